import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { AcceptedCommit, CommitStore } from '../../services/mls/commit-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`

const commit = (chatId: string, epoch: number, o: Partial<AcceptedCommit> = {}): AcceptedCommit => ({
  chatId,
  epoch,
  senderId: 'alice',
  deviceId: 'phone',
  leaves: ['alice/phone', null, 'bob/phone'],
  bytes: new Uint8Array([epoch, 1, 2, 3]),
  added: ['bob/phone'],
  welcome: new Uint8Array([9, epoch]),
  at: 1_000 + epoch,
  seq: null,
  ...o,
})

/**
 * What every store of accepted Commits must do. `another` opens a second store on the same data
 * (another connection, or another node's client) for the race.
 */
export function commitStoreContract(
  name: string,
  open: () => Promise<Harness<CommitStore> & { another(): Promise<CommitStore> }>,
): void {
  describe(`commit store contract: ${name}`, () => {
    let h: Awaited<ReturnType<typeof open>>
    let store: CommitStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('keeps one Commit per epoch, and answers the latest', async () => {
      const chatId = unique('c')
      assert.equal(await store.latest(chatId), null)
      assert.equal(await store.insert(commit(chatId, 0)), true)
      assert.equal(await store.insert(commit(chatId, 0, { senderId: 'bob' })), false, 'epoch 0 is taken')
      assert.equal(await store.insert(commit(chatId, 1, { leaves: ['alice/phone'] })), true)
      assert.deepEqual(await store.latest(chatId), commit(chatId, 1, { leaves: ['alice/phone'] }))
      assert.equal(await store.latest(unique('other')), null)
    })

    it('answers the Commit of an epoch, with its Welcome or none', async () => {
      const chatId = unique('c')
      await store.insert(commit(chatId, 0))
      await store.insert(commit(chatId, 1, { added: [], welcome: null }))
      assert.deepEqual(await store.get(chatId, 0), commit(chatId, 0))
      assert.deepEqual(await store.get(chatId, 1), commit(chatId, 1, { added: [], welcome: null }))
      assert.equal(await store.get(chatId, 2), null)
    })

    it('records the seq a Commit was given', async () => {
      const chatId = unique('c')
      await store.insert(commit(chatId, 0))
      await store.setSeq(chatId, 0, 7)
      assert.equal((await store.latest(chatId))?.seq, 7)
    })

    it('lets exactly one of many Commits for one epoch in, through two connections at the same instant', async () => {
      const second = await h.another()
      try {
        for (let round = 0; round < 5; round++) {
          const chatId = unique('race')
          const results = await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              (i % 2 ? second : store).insert(commit(chatId, 0, { deviceId: `d${i}` })),
            ),
          )
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results}`)
          const winner = results.indexOf(true)
          assert.equal((await second.latest(chatId))?.deviceId, `d${winner}`)
        }
      } finally {
        await second.close()
      }
    })

    it('keeps Commits across a reopen', async () => {
      const chatId = unique('c')
      await store.insert(commit(chatId, 0, { seq: 3 }))
      store = await h.reopen()
      assert.deepEqual(await store.latest(chatId), commit(chatId, 0, { seq: 3 }))
    })
  })
}
