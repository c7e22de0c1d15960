import { MongoAuditStore } from '../services/admin/mongo-audit-store.ts'
import { auditStoreContract } from './contract/audit-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

auditStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoAuditStore.open(uri)))
