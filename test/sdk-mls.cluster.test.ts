import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient, MemoryMlsStorage, type NatterClient } from '../client-sdk/src/index.ts'
import {
  type ClusterNode,
  clusterSecret,
  startTwoNodeCluster,
  type TwoNodeCluster,
} from './helpers/cluster.ts'

const ROUNDS = 5

/** Resolves once `c` holds a text in a chat (now, or after message events). */
function holds(c: NatterClient, chatId: string, text: string): Promise<void> {
  const ok = () => c.messages(chatId).some((m) => m.text === text)
  return ok() ? Promise.resolve() : c.next('message', ok).then(() => {})
}

describe('the SDK as an MLS client on two nodes (Redis, MongoDB-wire store)', () => {
  let cluster: TwoNodeCluster | undefined
  let a: ClusterNode
  let b: ClusterNode
  const { secret, token } = clusterSecret()
  const clients: NatterClient[] = []

  const device = async (node: ClusterNode, userId: string, deviceId: string) => {
    const c = await createClient({
      url: node.mqttUrl,
      userId,
      deviceId,
      getToken: () => token(userId),
      mls: { storage: new MemoryMlsStorage() },
    })
    clients.push(c)
    await c.keyPackagesReady()
    return c
  }

  before(async () => {
    cluster = await startTwoNodeCluster(secret)
    ;({ a, b } = cluster)
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await cluster?.stop()
  })

  it(`two members on two nodes commit at the same instant, ${ROUNDS} times: one wins each time, the other rebases by itself; messages still decrypt both ways`, async () => {
    const alice = await device(a, 'alice', 'phone')
    const bob = await device(b, 'bob', 'phone')
    const chatId = (await alice.createGroup('two nodes', ['bob'], { encrypted: true })).id
    await bob.whenEncryptionReady(chatId)
    await bob.open(chatId)
    await alice.open(chatId)
    let refused = 0
    for (const c of [alice, bob]) {
      const request = c.request.bind(c)
      c.request = ((op: string, params?: Record<string, unknown>) =>
        request(op, params).catch((err: { code?: string }) => {
          if (err.code === 'stale_epoch') refused++
          throw err
        })) as typeof c.request
    }
    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all([alice.updateKeys(chatId), bob.updateKeys(chatId)])
      const text = `round ${round}`
      await alice.send(chatId, { text: `${text} from alice` }).sent
      await bob.send(chatId, { text: `${text} from bob` }).sent
      await Promise.all([holds(bob, chatId, `${text} from alice`), holds(alice, chatId, `${text} from bob`)])
    }
    // The races happened (a Commit refused as stale, then made again), at most once per round.
    assert.ok(refused >= 1 && refused <= ROUNDS, `${refused} refusals in ${ROUNDS} rounds`)
    // One order of Commits for both: epochs 1 (the Adds) to 1 + 2 × ROUNDS, each once.
    const epochs = (c: NatterClient) =>
      c.messages(chatId).flatMap((m) => (m.event?.type === 'mls_commit' ? [m.event.epoch as number] : []))
    await Promise.all([alice.sync(chatId), bob.sync(chatId)])
    const expected = Array.from({ length: 1 + 2 * ROUNDS }, (_, i) => i)
    assert.deepEqual(epochs(alice), expected)
    assert.deepEqual(epochs(bob), expected)
    assert.ok(alice.messages(chatId).every((m) => m.kind !== 'text' || m.undecryptable === undefined))
    assert.ok(bob.messages(chatId).every((m) => m.kind !== 'text' || m.undecryptable === undefined))
  })
})
