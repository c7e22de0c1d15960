import { join } from 'node:path'
import type { Settings } from '../config/schema.ts'
import type { ChatStore } from '../services/chats/chat-store.ts'
import { MongoChatStore } from '../services/chats/mongo-chat-store.ts'
import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import type { MessageStore } from '../services/messages/message-store.ts'
import { MongoMessageStore } from '../services/messages/mongo-message-store.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'

export interface Stores {
  messages: MessageStore
  chats: ChatStore
  kind: 'sqlite' | 'mongodb'
}

/** MongoDB when NATTER_MONGODB_URI is set, otherwise SQLite files in the data directory. */
export async function openStores(settings: Settings): Promise<Stores> {
  if (settings.mongodbUri) {
    const [messages, chats] = await Promise.all([
      MongoMessageStore.open(settings.mongodbUri),
      MongoChatStore.open(settings.mongodbUri),
    ])
    return { messages, chats, kind: 'mongodb' }
  }
  return {
    messages: new SqliteMessageStore(join(settings.dataDir, 'messages.db')),
    chats: new SqliteChatStore(join(settings.dataDir, 'chats.db')),
    kind: 'sqlite',
  }
}
