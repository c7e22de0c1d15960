import { MongoMessageStore } from '../services/messages/mongo-message-store.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

messageStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoMessageStore.open(uri)))
