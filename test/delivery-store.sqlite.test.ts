import { SqliteDeliveryStore } from '../services/delivery/sqlite-delivery-store.ts'
import { deliveryStoreContract } from './contract/delivery-store.contract.ts'
import { sqliteHarness } from './helpers/store-harness.ts'

deliveryStoreContract('SQLite', () => sqliteHarness('delivery.db', (path) => new SqliteDeliveryStore(path)))
