import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient, type NatterClient, type Profile } from '../client-sdk/src/index.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

/**
 * The SDK's profile cache: a name shown on every message must not cost a profile.get per
 * render, and must follow changes, live and (the server's profile events being live only)
 * across a reconnect.
 */
describe('the SDK’s profile cache against a real node', () => {
  let t: TestNode
  const clients: NatterClient[] = []
  const client = async (userId: string, minMs = 50) => {
    const c = await createClient({
      url: t.mqttUrl,
      userId,
      deviceId: 'phone',
      getToken: () => t.token(userId),
      reconnect: { minMs, maxMs: Math.max(500, minMs) },
    })
    clients.push(c)
    return c
  }
  before(async () => {
    t = await startTestNode()
  })
  after(async () => {
    for (const c of clients) await c.close().catch(() => {})
    await t?.close()
  })

  it('reads a profile once, shares concurrent reads, and follows changes live and after a reconnect', async () => {
    // Reconnects wait 0.75–1.5 s: time for a change while amy is away.
    const amy = await client('amy', 1500)
    const ben = await client('ben')
    // Set before they share a chat: no event tells amy, she reads it.
    await ben.setProfile({ displayName: 'Ben' })
    await amy.direct('ben')
    const asked: string[][] = []
    amy.mqtt.on('packetsend', (p) => {
      if (p.cmd === 'publish' && p.topic === 'req/profile.get') {
        asked.push((JSON.parse(String(p.payload)) as { params: { userIds: string[] } }).params.userIds)
      }
    })
    const heard: Profile[] = []
    amy.on('profile', (p) => heard.push(p))

    // Two views asking at once: one request.
    const [first, second] = await Promise.all([
      amy.getProfiles(['ben', 'nobody', 'ben']),
      amy.getProfiles(['ben']),
    ])
    assert.deepEqual(asked, [['ben', 'nobody']])
    assert.deepEqual(
      first.profiles.map((p) => p.displayName),
      ['Ben'],
    )
    assert.deepEqual(first.notFound, ['nobody'])
    assert.deepEqual(second.profiles, first.profiles)
    assert.deepEqual(
      heard.map((p) => p.displayName),
      ['Ben'],
      'a profile that becomes known fires profile',
    )
    // From the cache: no request; ids not found are asked again (they may share a chat later).
    assert.equal((await amy.getProfiles(['ben'])).profiles[0]?.displayName, 'Ben')
    assert.equal(amy.profileOf('ben')?.displayName, 'Ben')
    assert.equal(asked.length, 1)
    assert.deepEqual(await amy.getProfiles(['nobody']), { profiles: [], notFound: ['nobody'] })
    assert.equal(asked.length, 2)

    // A live change: the event updates the cache.
    const renamed = amy.next('profile', (p) => p.displayName === 'Benjamin')
    await ben.setProfile({ displayName: 'Benjamin' })
    await renamed
    assert.equal((await amy.getProfiles(['ben'])).profiles[0]?.displayName, 'Benjamin')
    assert.equal(asked.length, 2)

    // A change while amy is away: no event reaches her; the cache is read again on reconnect.
    const down = amy.next('state', (s) => s === 'reconnecting')
    ;(amy.mqtt.stream as unknown as { destroy(): void }).destroy()
    await down
    const refreshed = amy.next('profile', (p) => p.displayName === 'Benji')
    await ben.setProfile({ displayName: 'Benji' })
    assert.equal(amy.profileOf('ben')?.displayName, 'Benjamin')
    await refreshed
    assert.deepEqual(asked.at(-1), ['ben'])
    assert.equal(asked.length, 3)
    assert.equal((await amy.getProfiles(['ben'])).profiles[0]?.displayName, 'Benji')
    assert.equal(asked.length, 3)
    // Her own profile, once set, is in the cache too.
    const mine = await amy.setProfile({ displayName: 'Amy' })
    assert.deepEqual(amy.profileOf('amy'), mine)
  })

  it('passes what the server refuses on to it', async () => {
    const cal = await client('cal')
    await assert.rejects(cal.getProfiles([]), { code: 'bad_request' })
  })
})
