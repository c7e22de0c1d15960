import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { closed, connackCode, connectClient, nextMessage, rawConnack, subscribe } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

// CONNACK return codes of MQTT 3.1.1
type PrivateKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey']

const IDENTIFIER_REJECTED = 2
const BAD_USERNAME_OR_PASSWORD = 4
const NOT_AUTHORIZED = 5

describe('CONNECT with a JWT (HS256)', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode()
  })
  after(() => t.close())

  it('accepts a valid token over TCP and over WebSocket, and the two exchange a QoS 1 message', async () => {
    const phone = await connectClient(t.mqttUrl, {
      clientId: 'alice/phone',
      password: await t.token('alice'),
    })
    const laptop = await connectClient(t.wsUrl, {
      clientId: 'alice/laptop',
      password: await t.token('alice'),
    })
    assert.deepEqual(await subscribe(laptop, ['u/alice/self']), [1])
    const got = nextMessage(laptop, 'u/alice/self')
    await phone.publishAsync('u/alice/self', 'draft saved', { qos: 1 })
    const packet = await got
    assert.equal(packet.payload.toString(), 'draft saved')
    assert.equal(packet.qos, 1)
    await Promise.all([phone.endAsync(), laptop.endAsync()])
  })

  it('refuses missing, malformed, expired, wrongly signed and wrong-algorithm tokens', async () => {
    const other = new TextEncoder().encode('x'.repeat(32))
    const cases: Array<[string, string | undefined]> = [
      ['missing', undefined],
      ['malformed', 'not-a-jwt'],
      ['expired', await t.token('alice', { expiresInSeconds: -60 })],
      ['wrong signature', await t.token('alice', { secret: other })],
      ['wrong algorithm', await t.token('alice', { alg: 'HS512' })],
      [
        'no expiry',
        await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(t.secret),
      ],
      ['subject with a slash', await t.token('alice/x')],
      ['subject with a wildcard', await t.token('al+ce')],
    ]
    // A client that is connected during the refusals keeps working.
    const bystander = await connectClient(t.mqttUrl, {
      clientId: 'bob/phone',
      password: await t.token('bob'),
    })
    await subscribe(bystander, ['u/bob/self'])
    for (const [name, password] of cases) {
      const code = await connackCode(t.mqttUrl, {
        clientId: 'alice/phone',
        ...(password ? { password } : {}),
      })
      assert.equal(code, BAD_USERNAME_OR_PASSWORD, name)
    }
    const got = nextMessage(bystander, 'u/bob/self')
    await bystander.publishAsync('u/bob/self', 'still here', { qos: 1 })
    assert.equal((await got).payload.toString(), 'still here')
    await bystander.endAsync()
  })

  it("refuses a client id of another user, so no one can take over someone's session", async () => {
    assert.equal(
      await connackCode(t.mqttUrl, { clientId: 'bob/phone', password: await t.token('alice') }),
      NOT_AUTHORIZED,
    )
  })

  it('rejects empty and malformed client ids', async () => {
    const password = await t.token('alice')
    for (const clientId of ['', 'alice', 'alice/', 'alice/ph/one', 'alice/ph+one']) {
      assert.equal(
        await connackCode(t.mqttUrl, { clientId, password, clean: clientId === '' }),
        IDENTIFIER_REJECTED,
        JSON.stringify(clientId),
      )
    }
    // An empty id with a persistent session is a spec violation aedes would let through.
    assert.equal(
      await rawConnack(t.node.ports.mqtt, {
        clientId: '',
        clean: false,
        username: 'alice',
        password: Buffer.from(password),
      }),
      IDENTIFIER_REJECTED,
    )
  })

  it('refuses a will on a topic the client may not publish to, or a retained will', async () => {
    const password = await t.token('alice')
    for (const will of [
      { topic: 'u/bob/self', payload: Buffer.from('gone'), qos: 1 as const, retain: false },
      { topic: '$SYS/x', payload: Buffer.from('gone'), qos: 0 as const, retain: false },
      { topic: 'u/alice/self', payload: Buffer.from('gone'), qos: 1 as const, retain: true },
    ]) {
      assert.equal(await connackCode(t.mqttUrl, { clientId: 'alice/phone', password, will }), NOT_AUTHORIZED)
    }
    // An allowed will is published when the device drops.
    const laptop = await connectClient(t.mqttUrl, { clientId: 'alice/laptop', password })
    await subscribe(laptop, ['u/alice/self'])
    const phone = await connectClient(t.mqttUrl, {
      clientId: 'alice/phone',
      password,
      will: { topic: 'u/alice/self', payload: Buffer.from('phone lost'), qos: 1, retain: false },
    })
    const will = nextMessage(laptop, 'u/alice/self')
    phone.stream.destroy()
    assert.equal((await will).payload.toString(), 'phone lost')
    phone.end(true)
    await laptop.endAsync()
  })

  it('closes a connection when its token expires', async () => {
    const client = await connectClient(t.mqttUrl, {
      clientId: 'alice/phone',
      password: await t.token('alice', { expiresInSeconds: 2 }),
    })
    const started = Date.now()
    await closed(client)
    assert.ok(Date.now() - started >= 1000, 'closed at expiry, not before')
    client.end(true)
  })
})

for (const alg of ['RS256', 'ES256'] as const) {
  describe(`CONNECT with a JWT (${alg})`, () => {
    let t: TestNode
    let privateKey: PrivateKey
    let publicPem: string
    before(async () => {
      const pair = await generateKeyPair(alg)
      privateKey = pair.privateKey
      publicPem = await exportSPKI(pair.publicKey)
      t = await startTestNode({
        NATTER_JWT_ALGORITHM: alg,
        NATTER_JWT_SECRET: '',
        NATTER_JWT_PUBLIC_KEY: publicPem,
      })
    })
    after(() => t.close())

    const sign = (o: { alg: string; key: PrivateKey | Uint8Array }) =>
      new SignJWT({})
        .setProtectedHeader({ alg: o.alg })
        .setSubject('alice')
        .setExpirationTime('1h')
        .sign(o.key)

    it('accepts a token signed with the private key', async () => {
      const client = await connectClient(t.mqttUrl, {
        clientId: 'alice/phone',
        password: await sign({ alg, key: privateKey }),
      })
      await client.endAsync()
    })

    it('refuses an HS256 token signed with the public key (algorithm confusion)', async () => {
      const password = await sign({ alg: 'HS256', key: new TextEncoder().encode(publicPem) })
      assert.equal(
        await connackCode(t.mqttUrl, { clientId: 'alice/phone', password }),
        BAD_USERNAME_OR_PASSWORD,
      )
    })

    it('refuses a token of the other asymmetric algorithm', async () => {
      const otherAlg = alg === 'RS256' ? 'ES256' : 'RS256'
      const other = await generateKeyPair(otherAlg)
      const password = await sign({ alg: otherAlg, key: other.privateKey })
      assert.equal(
        await connackCode(t.mqttUrl, { clientId: 'alice/phone', password }),
        BAD_USERNAME_OR_PASSWORD,
      )
    })
  })
}
