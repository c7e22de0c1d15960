import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MongoClient } from 'mongodb'
import { MongoMessageStore } from '../services/messages/mongo-message-store.ts'
import { SEARCH_TERMS_VERSION } from '../services/messages/search-terms.ts'
import { messageStoreContract } from './contract/message-store.contract.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { mongoHarness } from './helpers/store-harness.ts'

messageStoreContract('MongoDB (FerretDB)', () => mongoHarness((uri) => MongoMessageStore.open(uri)))

describe('MongoDB message store: terms of an older searchTerms', () => {
  let ferret: FerretDb
  before(async () => {
    ferret = await startFerretDb()
  })
  after(() => ferret.stop())

  it('computes them again at open, on two nodes at once, and marks the version', async () => {
    const first = await MongoMessageStore.open(ferret.uri)
    const base = { senderId: 'alice', deviceId: 'phone', kind: 'text' as const, body: {} }
    await first.append({ ...base, chatId: 'v', clientMsgId: 'zh', text: '我家在上海东边。' })
    await first.append({ ...base, chatId: 'v', clientMsgId: 'de', text: 'Die Straße' })
    // More than two batches of the re-index's writes (50), in 10 chats (appends to one chat run in turn).
    await Promise.all(
      Array.from({ length: 10 }, async (_, c) => {
        for (let i = 0; i < 12; i++) {
          await first.append({ ...base, chatId: `big${c}`, clientMsgId: `b${i}`, text: `病院 number ${i}` })
        }
      }),
    )
    await first.close()
    // As version 1 left them: a regex run of letters and digits per term, and no mark.
    const client = await MongoClient.connect(ferret.uri)
    try {
      const db = client.db()
      const messages = db.collection<{ _id: string; text: string | null }>('messages')
      const docs = await messages.find({}, { projection: { _id: 1, text: 1 } }).toArray()
      const v1 = (text: string | null) => [
        ...new Set(
          (text ?? '')
            .toLocaleLowerCase('en-US')
            .normalize('NFKC')
            .match(/[\p{L}\p{N}]+/gu),
        ),
      ]
      // 50 at a time: FerretDB v1.24 hangs on an update command of 100 statements.
      for (let i = 0; i < docs.length; i += 50) {
        await messages.bulkWrite(
          docs.slice(i, i + 50).map((doc) => ({
            updateOne: { filter: { _id: doc._id }, update: { $set: { terms: v1(doc.text) } } },
          })),
        )
      }
      await db.collection('search_meta').deleteMany({})

      const [a, b] = await Promise.all([
        MongoMessageStore.open(ferret.uri),
        MongoMessageStore.open(ferret.uri),
      ])
      try {
        for (const store of [a, b]) {
          assert.deepEqual(
            (await store.search('v', '上海', 10)).map((m) => m.seq),
            [1],
          )
          assert.deepEqual(
            (await store.search('v', 'strasse', 10)).map((m) => m.seq),
            [2],
          )
          for (let c = 0; c < 10; c++) assert.equal((await store.search(`big${c}`, '病院', 200)).length, 12)
        }
        assert.deepEqual(await db.collection('search_meta').find().toArray(), [
          { _id: 'terms', version: SEARCH_TERMS_VERSION },
        ])
      } finally {
        await Promise.all([a.close(), b.close()])
      }
    } finally {
      await client.close()
    }
  })
})
