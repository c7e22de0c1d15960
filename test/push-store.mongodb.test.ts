import { MongoPushStore } from '../services/push/mongo-push-store.ts'
import { pushStoreContract } from './contract/push-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

pushStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoPushStore.open(uri)))
