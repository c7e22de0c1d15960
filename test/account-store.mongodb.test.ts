import { MongoAccountStore } from '../services/accounts/mongo-account-store.ts'
import { accountStoreContract } from './contract/account-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

accountStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoAccountStore.open(uri)))
