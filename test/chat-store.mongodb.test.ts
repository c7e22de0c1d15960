import { MongoChatStore } from '../services/chats/mongo-chat-store.ts'
import { chatStoreContract } from './contract/chat-store.contract.ts'
import { mongoHarness } from './helpers/store-harness.ts'

chatStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoChatStore.open(uri)))
