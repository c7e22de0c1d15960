import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  type ClusterNode,
  clusterSecret,
  startTwoNodeCluster,
  type TwoNodeCluster,
} from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import {
  base64,
  commitAdd,
  commitParams,
  createChatGroup,
  epochOf,
  joinFromWelcome,
  type MlsMember,
  newKeyPackage,
  receive,
} from './helpers/mls.ts'

type Claim = { keyPackages: { deviceId: string; keyPackage: string; lastResort: boolean }[] }
type CommitEvent = { type: 'mls_commit'; epoch: number; commit: string }
const ROUNDS = 8

const commitsSeen = (d: Device, chatId: string) =>
  d.inbox
    .filter((e) => e.type === 'message' && e.chatId === chatId && e.event?.type === 'mls_commit')
    .map((e) => ({ seq: e.seq, ...(e.event as CommitEvent) }))

describe('the MLS Delivery Service in a cluster (two nodes on Redis, MongoDB-wire store)', () => {
  let cluster: TwoNodeCluster | undefined
  let a: ClusterNode
  let b: ClusterNode
  const { secret, token } = clusterSecret()
  const devices: Device[] = []

  before(async () => {
    cluster = await startTwoNodeCluster(secret)
    ;({ a, b } = cluster)
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    await cluster?.stop()
  })

  it('hands each KeyPackage to one of two claimers on two nodes at the same instant', async () => {
    const owner = await Device.connect(a.mqttUrl, 'kim', 'phone', await token('kim'))
    const onA = await Device.connect(a.mqttUrl, 'lee', 'phone', await token('lee'))
    const onB = await Device.connect(b.mqttUrl, 'lee', 'laptop', await token('lee'))
    devices.push(owner, onA, onB)
    await owner.request('chat.direct', { with: 'lee' })
    const uploaded = await Promise.all(
      Array.from({ length: 10 }, async () => (await newKeyPackage('kim/phone')).base64),
    )
    await owner.request('mls.keypackages.upload', { keyPackages: uploaded })
    const claims = await Promise.all(
      Array.from({ length: 14 }, (_, i) =>
        (i % 2 ? onB : onA).request<Claim>('mls.keypackages.claim', { userId: 'kim' }),
      ),
    )
    const handed = claims.flatMap((c) => c.keyPackages.map((k) => k.keyPackage))
    assert.equal(handed.length, 10, 'ten packages for ten of the fourteen claims; the rest found none left')
    assert.deepEqual([...handed].sort(), [...uploaded].sort(), 'each package once')
  })

  it(`accepts exactly one of two Commits sent at the same instant through two nodes, ${ROUNDS} epochs in a row; every device sees one order`, async (t) => {
    const alice = await Device.connect(a.mqttUrl, 'alice', 'phone', await token('alice'))
    const bob = await Device.connect(b.mqttUrl, 'bob', 'phone', await token('bob'))
    devices.push(alice, bob)
    const chatId = (
      await alice.request<{ id: string }>('chat.create', {
        name: 'Two nodes',
        members: ['bob'],
        encrypted: true,
      })
    ).id
    const aliceMls: MlsMember = { identity: 'alice/phone', kp: await newKeyPackage('alice/phone') }
    const bobMls: MlsMember = { identity: 'bob/phone', kp: await newKeyPackage('bob/phone') }
    await bob.request('mls.keypackages.upload', { keyPackages: [bobMls.kp.base64] })
    await createChatGroup(chatId, aliceMls)
    const claimed = await alice.request<Claim>('mls.keypackages.claim', { userId: 'bob' })
    const add = await commitAdd(
      aliceMls,
      claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
    )
    await alice.request('mls.commit', commitParams(chatId, add))
    aliceMls.state = add.newState
    // Bob's device, on the other node, fetches the Welcome the Commit brought.
    const w = await bob.request<{ welcome: string }>('mls.welcome', { chatId, epoch: 0 })
    await joinFromWelcome(bobMls, new Uint8Array(Buffer.from(w.welcome, 'base64')))
    const members = [
      { d: alice, m: aliceMls },
      { d: bob, m: bobMls },
    ]
    const wins = { alice: 0, bob: 0 }
    for (let round = 0; round < ROUNDS; round++) {
      const epoch = epochOf(aliceMls)
      assert.equal(epochOf(bobMls), epoch)
      const made = await Promise.all(members.map(({ m }) => commitAdd(m, [])))
      const results = await Promise.allSettled(
        members.map(({ d }, i) =>
          d.request<{ seq: number; epoch: number }>('mls.commit', {
            chatId,
            commit: base64(made[i]?.commit ?? new Uint8Array()),
          }),
        ),
      )
      const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
      assert.equal(winners.length, 1, `round ${round}: ${results.map((r) => r.status)}`)
      const w = winners[0] as number
      const loser = 1 - w
      const refusal = (results[loser] as PromiseRejectedResult).reason as Error & {
        code: string
        epoch: number
      }
      assert.equal(refusal.code, 'stale_epoch', refusal.message)
      assert.equal(refusal.epoch, epoch + 1)
      wins[w === 0 ? 'alice' : 'bob']++
      // The winner applies its own Commit; the loser drops its own and processes the winner's from its inbox.
      const winner = members[w]
      const other = members[loser]
      assert.ok(winner && other)
      winner.m.state = made[w]?.newState
      await other.d.until(
        () => commitsSeen(other.d, chatId).some((c) => c.epoch === epoch),
        `round ${round}: the winner`,
      )
      const seen = commitsSeen(other.d, chatId).find((c) => c.epoch === epoch)
      assert.equal(seen?.commit, base64(made[w]?.commit ?? new Uint8Array()))
      await receive(other.m, new Uint8Array(Buffer.from(seen?.commit ?? '', 'base64')))
      assert.equal(epochOf(other.m), epoch + 1)
    }
    for (const { d } of members) {
      await d.until(() => commitsSeen(d, chatId).length === ROUNDS + 1, 'every Commit')
      const seen = commitsSeen(d, chatId)
      assert.deepEqual(
        seen.map((c) => c.epoch),
        Array.from({ length: ROUNDS + 1 }, (_, i) => i),
        'one Commit per epoch, in seq order',
      )
      assert.deepEqual(
        seen.map((c) => c.seq),
        [...seen.map((c) => c.seq)].sort((x, y) => x - y),
      )
    }
    const history = await bob.request<{ messages: { event?: CommitEvent }[] }>('sync', {
      chatId,
      after: 0,
      limit: 200,
    })
    assert.deepEqual(
      history.messages.filter((m) => m.event?.type === 'mls_commit').map((m) => m.event?.epoch),
      Array.from({ length: ROUNDS + 1 }, (_, i) => i),
      'the stored chat holds the same Commits, in the same order',
    )
    t.diagnostic(`wins over ${ROUNDS} races: alice (node a) ${wins.alice}, bob (node b) ${wins.bob}`)
  })
})
