import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { encodeMlsMessage } from 'ts-mls'
import { decodeMessage } from '../services/mls/mls-codec.ts'
import { STORE_BACKENDS, useBackendNode } from './helpers/backend-node.ts'
import { connectClient, nextMessage, subscribe } from './helpers/clients.ts'
import type { Device } from './helpers/device.ts'
import {
  base64,
  commitAdd,
  commitParams,
  createChatGroup,
  encrypt,
  type MlsMember,
  newKeyPackage,
} from './helpers/mls.ts'
import { Devices, uploadedMember } from './helpers/mls-devices.ts'

/**
 * Encrypted chats against hostile or careless clients (docs/e2ee.md sections 2, 3, 4, 10, 12):
 * forged devices in Commits, a committer changing its own leaf's identity, third users, and
 * malformed ids and payloads. Each gets the documented error, and nobody else loses anything.
 */

type Chat = { id: string; kind: string; encrypted: boolean }
type Claim = { keyPackages: { deviceId: string; keyPackage: string }[] }
type Failure = Error & { code: string }

const bytesOf = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))
const failure = (p: Promise<unknown>): Promise<Failure> =>
  p.then(
    () => assert.fail('accepted'),
    (err: Failure) => err,
  )

for (const backend of STORE_BACKENDS) {
  describe(`encrypted chats against hostile clients on ${backend}`, () => {
    const devices = new Devices(() => server.node)
    const server = useBackendNode(backend, () => devices.closeAll())
    const connect = (userId: string, deviceId: string) => devices.connect(userId, deviceId)
    const group = (d: Device, chatId: string) =>
      d.request<{ epoch: number; leaves: { userId: string; deviceId: string }[] }>('mls.group', { chatId })

    it('a Commit adds only KeyPackages their own device uploaded: no forged device of the other user, or of oneself', async () => {
      const alice = await connect('alice', 'phone')
      const bob = await connect('bob', 'phone')
      const chatId = (await alice.request<Chat>('chat.direct', { with: 'bob', encrypted: true })).id
      const a = await uploadedMember(alice)
      await uploadedMember(bob)
      await createChatGroup(chatId, a)
      // Alice makes KeyPackages herself (she holds their private keys) naming devices of Bob's
      // and of her own: a ghost device, and Bob's real phone, whose own package is in the directory.
      for (const forged of ['bob/ghost', 'bob/phone', 'alice/ghost']) {
        const fake = await newKeyPackage(forged)
        const err = await failure(
          alice.request('mls.commit', commitParams(chatId, await commitAdd(a, [fake.bytes]))),
        )
        assert.equal(err.code, 'invalid_commit', forged)
        assert.match(
          err.message,
          new RegExp(`an Add of ${forged} with a KeyPackage that device did not upload`),
        )
      }
      assert.equal((await group(alice, chatId)).epoch, 0)
      // A package claimed before its device was revoked: the device is never added again.
      const tablet = await connect('bob', 'tablet')
      await uploadedMember(tablet)
      const claimed = await alice.request<Claim>('mls.keypackages.claim', { userId: 'bob' })
      const of = (deviceId: string) => {
        const k = claimed.keyPackages.find((c) => c.deviceId === deviceId)
        assert.ok(k, deviceId)
        return bytesOf(k.keyPackage)
      }
      await bob.request('device.revoke', { deviceId: 'tablet' })
      const revoked = await failure(
        alice.request('mls.commit', commitParams(chatId, await commitAdd(a, [of('phone'), of('tablet')]))),
      )
      assert.equal(revoked.code, 'invalid_commit')
      assert.match(revoked.message, /an Add of bob\/tablet with a KeyPackage that device did not upload/)
      // The package Bob's phone uploaded, claimed from the directory, is accepted.
      const open = await commitAdd(a, [of('phone')])
      assert.equal(
        (await alice.request<{ epoch: number }>('mls.commit', commitParams(chatId, open))).epoch,
        1,
      )
      assert.deepEqual(
        (await group(bob, chatId)).leaves.map((l) => `${l.userId}/${l.deviceId}`),
        ['alice/phone', 'bob/phone'],
      )
    })

    it('a Commit’s UpdatePath keeps its sender’s identity: no committer turns its leaf into another device', async () => {
      const carol = await connect('carol', 'phone')
      await connect('dave', 'phone')
      const chatId = (await carol.request<Chat>('chat.direct', { with: 'dave', encrypted: true })).id
      const c = await uploadedMember(carol)
      await createChatGroup(chatId, c)
      const made = await commitAdd(c, [])
      const m = decodeMessage(made.commit)
      assert.ok(m.wireformat === 'mls_public_message' && m.publicMessage.content.contentType === 'commit')
      const path = m.publicMessage.content.commit.path
      assert.ok(path)
      assert.equal(path.leafNode.credential.credentialType, 'basic')
      // The leaf's signature no longer matches, which the DS does not check (docs/e2ee.md §3); a
      // malicious client signs its own leaf node, so only the identity check stops this.
      path.leafNode.credential = { credentialType: 'basic', identity: new TextEncoder().encode('dave/phone') }
      const err = await failure(carol.request('mls.commit', { chatId, commit: base64(encodeMlsMessage(m)) }))
      assert.equal(err.code, 'invalid_commit')
      assert.match(err.message, /its UpdatePath's leaf is "dave\/phone", not its sender \(carol\/phone\)/)
      assert.equal((await group(carol, chatId)).epoch, 0)
      // The honest Commit still opens the group.
      assert.equal(
        (await carol.request<{ epoch: number }>('mls.commit', commitParams(chatId, made))).epoch,
        1,
      )
    })

    it('a third user, malformed ids and wrong payloads: the documented errors, and the pair loses nothing', async () => {
      const erin = await connect('erin', 'phone')
      const frank = await connect('frank', 'phone')
      const mallory = await connect('mallory', 'phone')
      const chatId = (await erin.request<Chat>('chat.direct', { with: 'frank', encrypted: true })).id
      const plain = (await erin.request<Chat>('chat.direct', { with: 'frank' })).id
      const e = await uploadedMember(erin)
      await uploadedMember(frank)
      await createChatGroup(chatId, e)
      const open = await commitAdd(
        e,
        (await erin.request<Claim>('mls.keypackages.claim', { userId: 'frank' })).keyPackages.map((k) =>
          bytesOf(k.keyPackage),
        ),
      )
      await erin.request('mls.commit', commitParams(chatId, open))
      e.state = open.newState
      const ciphertext = base64(await encrypt(e, 'only for frank'))
      await erin.request('send', { chatId, clientMsgId: 'c1', ciphertext })

      // Mallory: not a member of anything of theirs.
      await uploadedMember(mallory)
      for (const [op, params] of [
        ['send', { chatId, clientMsgId: 'm1', ciphertext }],
        ['mls.group', { chatId }],
        ['mls.welcome', { chatId, epoch: 0 }],
        ['mls.commit', commitParams(chatId, open)],
        ['history', { chatId }],
        ['chat.get', { chatId }],
        [
          'media.begin',
          { chatId, contentType: 'application/octet-stream', size: 10, sha256: 'a'.repeat(64) },
        ],
      ] as const)
        assert.equal((await failure(mallory.request(op, params))).code, 'chat_not_found', op)
      assert.deepEqual(await mallory.request('mls.keypackages.claim', { userId: 'frank' }), {
        keyPackages: [],
      })
      const raw = await connectClient(server.node.mqttUrl, {
        clientId: 'mallory/raw',
        password: await server.node.token('mallory'),
      })
      assert.deepEqual(await subscribe(raw, [`c/${chatId}/typing`], 0), [128])
      await raw.endAsync()

      // Malformed ids that look like an encrypted direct chat's.
      for (const bad of ['e_d.', 'e_d..x', `${chatId}.`, 'e_d.é'])
        for (const [op, params] of [
          ['send', { chatId: bad, clientMsgId: 'b1', ciphertext }],
          ['mls.group', { chatId: bad }],
          ['mls.commit', { chatId: bad, commit: base64(open.commit) }],
          ['mls.welcome', { chatId: bad, epoch: 0 }],
          ['chat.get', { chatId: bad }],
        ] as const) {
          const code = (await failure(erin.request(op, params))).code
          assert.ok(['chat_not_found', 'bad_request'].includes(code), `${op} ${bad}: ${code}`)
        }

      // Wrong payloads from a member.
      const refused = async (params: Record<string, unknown>, code: string, message: RegExp) => {
        const err = await failure(erin.request('send', { clientMsgId: `x${Math.random()}`, ...params }))
        assert.equal(err.code, code, JSON.stringify(params).slice(0, 80))
        assert.match(err.message, message)
      }
      await refused({ chatId, text: 'hello' }, 'not_allowed', /end-to-end encrypted/)
      await refused({ chatId, ciphertext, replyTo: 1 }, 'not_allowed', /end-to-end encrypted/)
      await refused({ chatId: plain, ciphertext }, 'not_allowed', /is not encrypted/)
      await refused({ chatId, ciphertext: 'not base64!' }, 'bad_request', /base64/)
      await refused({ chatId, ciphertext: 'A'.repeat(90_000) }, 'bad_request', /over 65536 bytes/)
      await refused({ chatId, ciphertext: base64(open.commit) }, 'bad_request', /mls_public_message/)
      await refused({ chatId, ciphertext: base64(e.kp.bytes) }, 'bad_request', /mls_key_package/)
      await refused({ chatId, ciphertext: '' }, 'bad_request', /./)
      // Text on c/<chatId>/send: PUBACK, then the refusal on the device's err topic.
      const notice = nextMessage(erin.client, 'd/erin/phone/err')
      await erin.client.publishAsync(
        `c/${chatId}/send`,
        JSON.stringify({ clientMsgId: 'raw1', text: 'hi' }),
        {
          qos: 1,
        },
      )
      assert.deepEqual(
        (({ code, ref }) => ({ code, ref }))(JSON.parse((await notice).payload.toString('utf8'))),
        { code: 'not_allowed', ref: 'raw1' },
      )
      // Text over HTTP too.
      const http = await fetch(`${server.node.httpUrl}/v1/send`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${await server.node.token('erin')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ chatId, clientMsgId: 'h1', text: 'hello' }),
      })
      assert.equal(((await http.json()) as { error: { code: string } }).error.code, 'not_allowed')

      // Media: only opaque bytes, no name or duration, not for a stranger's chat.
      const begin = (params: Record<string, unknown>) =>
        failure(erin.request('media.begin', { chatId, size: 100, sha256: 'b'.repeat(64), ...params }))
      assert.equal((await begin({ contentType: 'image/png' })).code, 'unsupported_media_type')
      assert.equal(
        (await begin({ contentType: 'application/octet-stream', name: 'secret.pdf' })).code,
        'not_allowed',
      )
      assert.equal(
        (await begin({ contentType: 'application/octet-stream', durationMs: 1000 })).code,
        'not_allowed',
      )
      assert.equal(
        (await begin({ contentType: 'application/octet-stream', size: 10 * 1024 ** 4 })).code,
        'too_large',
      )

      // An encrypted file sent in the pair's chat: Frank may fetch it, Mallory neither fetches nor forwards it.
      const bytes = randomBytes(1000)
      const begun = await erin.request<{
        mediaId: string
        upload: { url: string; headers: Record<string, string> }
      }>('media.begin', {
        chatId,
        contentType: 'application/octet-stream',
        size: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
      })
      const put = await fetch(begun.upload.url, { method: 'PUT', headers: begun.upload.headers, body: bytes })
      await put.arrayBuffer()
      await erin.request('media.complete', { mediaId: begun.mediaId })
      await erin.request('send', {
        chatId,
        clientMsgId: 'f1',
        ciphertext: base64(await encrypt(e, 'a file')),
        media: [begun.mediaId],
      })
      assert.ok((await frank.request<{ url: string }>('media.get', { mediaId: begun.mediaId })).url)
      assert.equal(
        (await failure(mallory.request('media.get', { mediaId: begun.mediaId }))).code,
        'media_not_found',
      )
      const own = (await mallory.request<Chat>('chat.direct', { with: 'erin' })).id
      assert.equal(
        (await failure(mallory.request('send', { chatId: own, clientMsgId: 'fw', media: [begun.mediaId] })))
          .code,
        'media_not_found',
      )

      // The pair's chat is whole: its two ciphertexts (the file's with its id), nothing else.
      const history = await frank.request<{
        messages: { seq: number; ciphertext?: string; text: string | null; media?: string[] }[]
      }>('history', { chatId })
      const sent = history.messages.filter((m) => m.ciphertext).sort((x, y) => x.seq - y.seq)
      assert.deepEqual(
        sent.map((m) => [m.ciphertext === ciphertext, m.text, m.media]),
        [
          [true, null, undefined],
          [false, null, [begun.mediaId]],
        ],
      )
      assert.equal((await group(frank, chatId)).epoch, 1)
    })
    it('direct-chat rules, the directory and the send path against a member: refused, and nothing of the others touched', async () => {
      const gina = await connect('gina', 'phone')
      const hugo = await connect('hugo', 'phone')
      const ivy = await connect('ivy', 'phone')
      for (const encrypted of [true, false])
        assert.equal(
          (await failure(gina.request('chat.direct', { with: 'gina', encrypted }))).code,
          'bad_request',
        )
      const chatId = (await gina.request<Chat>('chat.direct', { with: 'hugo', encrypted: true })).id
      for (const [op, params] of [
        ['chat.add', { chatId, members: ['ivy'] }],
        ['chat.remove', { chatId, userId: 'hugo' }],
        ['chat.leave', { chatId }],
        ['chat.rename', { chatId, name: 'ours' }],
        ['chat.role', { chatId, userId: 'gina', role: 'admin' }],
      ] as const)
        assert.equal((await failure(gina.request(op, params))).code, 'not_allowed', op)
      const g = await uploadedMember(gina)
      const h = await uploadedMember(hugo)
      await uploadedMember(ivy)
      await createChatGroup(chatId, g)
      const open = await commitAdd(
        g,
        (await gina.request<Claim>('mls.keypackages.claim', { userId: 'hugo' })).keyPackages.map((k) =>
          bytesOf(k.keyPackage),
        ),
      )
      await gina.request('mls.commit', commitParams(chatId, open))
      g.state = open.newState
      // Hugo's Welcome is his phone's: Gina's phone asking gets not_found.
      assert.equal((await failure(gina.request('mls.welcome', { chatId, epoch: 0 }))).code, 'not_found')
      assert.equal((await hugo.request<{ epoch: number }>('mls.welcome', { chatId, epoch: 0 })).epoch, 1)

      // A KeyPackage of another cipher suite (its bytes changed: the suite is checked before signatures).
      const kp = decodeMessage(h.kp.bytes)
      assert.ok(kp.wireformat === 'mls_key_package')
      kp.keyPackage.cipherSuite = 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'
      const suite = await failure(
        hugo.request('mls.keypackages.upload', { keyPackages: [base64(encodeMlsMessage(kp))] }),
      )
      assert.equal(suite.code, 'invalid_key_package')
      assert.match(suite.message, /keyPackages\.0: cipher suite/)
      // 10,000 in one call: the schema's 100 at most, nothing stored.
      const before = await hugo.request<{ count: number }>('mls.keypackages.count')
      assert.equal(
        (await failure(hugo.request('mls.keypackages.upload', { keyPackages: Array(10_000).fill('AAAA') })))
          .code,
        'bad_request',
      )
      assert.deepEqual(await hugo.request('mls.keypackages.count'), before)

      // Ciphertext of another chat's group, and a pending upload of someone else's beside it.
      const other = (await gina.request<Chat>('chat.create', { name: 'x', members: [], encrypted: true })).id
      const stranger: MlsMember = { identity: 'gina/phone', kp: g.kp }
      await createChatGroup(other, stranger)
      const wrongGroup = await failure(
        gina.request('send', { chatId, clientMsgId: 'w1', ciphertext: base64(await encrypt(stranger, 'x')) }),
      )
      assert.equal(wrongGroup.code, 'bad_request')
      assert.match(wrongGroup.message, /its group is not this chat's/)
      // A handshake sent as a PrivateMessage (its content type is in the clear): not a message.
      const handshake = decodeMessage(await encrypt(g, 'x'))
      assert.ok(handshake.wireformat === 'mls_private_message')
      handshake.privateMessage.contentType = 'commit'
      const notApplication = await failure(
        gina.request('send', { chatId, clientMsgId: 'w3', ciphertext: base64(encodeMlsMessage(handshake)) }),
      )
      assert.equal(notApplication.code, 'bad_request')
      assert.match(notApplication.message, /a commit PrivateMessage, not an application one/)
      const ivyChat = (await ivy.request<Chat>('chat.direct', { with: 'gina', encrypted: true })).id
      const pending = await ivy.request<{ mediaId: string }>('media.begin', {
        chatId: ivyChat,
        contentType: 'application/octet-stream',
        size: 100,
        sha256: 'c'.repeat(64),
      })
      const ciphertext = base64(await encrypt(g, 'with a file'))
      assert.equal(
        (
          await failure(
            gina.request('send', { chatId, clientMsgId: 'w2', ciphertext, media: [pending.mediaId] }),
          )
        ).code,
        'media_not_found',
      )
      // The same ciphertext, without the media, goes through: the refusal lost nothing.
      const sent = await gina.request('send', { chatId, clientMsgId: 'w2', ciphertext })
      assert.ok(JSON.stringify(sent).includes(ciphertext), JSON.stringify(sent).slice(0, 300))
    })
  })
}
