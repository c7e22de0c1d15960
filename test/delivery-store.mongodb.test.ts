import { MongoDeliveryStore } from '../services/delivery/mongo-delivery-store.ts'
import { deliveryStoreContract } from './contract/delivery-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

deliveryStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoDeliveryStore.open(uri)))
