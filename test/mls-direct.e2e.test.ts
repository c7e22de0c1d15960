import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { STORE_BACKENDS, useBackendNode } from './helpers/backend-node.ts'
import {
  base64,
  commitAdd,
  commitParams,
  commitRemove,
  createChatGroup,
  encrypt,
  joinFromWelcome,
  type MlsMember,
  newKeyPackage,
} from './helpers/mls.ts'
import { Devices, uploadedMember } from './helpers/mls-devices.ts'

/**
 * Encrypted direct chats at the protocol level (docs/e2ee.md, "Encrypted direct chats"): the
 * pair's second direct chat, the rules of direct chats (blocks, two users, no member changes)
 * and the Delivery Service's rules for its MLS group, with hand-made MLS messages.
 */

type Chat = { id: string; kind: string; encrypted: boolean; name: string | null; members: { role: string }[] }
type Claim = { keyPackages: { deviceId: string; keyPackage: string }[] }

const bytesOf = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'))

for (const backend of STORE_BACKENDS) {
  describe(`encrypted direct chats on ${backend}`, () => {
    const devices = new Devices(() => server.node)
    const server = useBackendNode(backend, () => devices.closeAll())
    const connect = (userId: string, deviceId: string) => devices.connect(userId, deviceId)

    it('chat.direct {with, encrypted: true} is the pair’s second direct chat: its own id (e_d.), found again from either side', async () => {
      const alice = await connect('alice', 'phone')
      const bob = await connect('bob', 'phone')
      const plain = await alice.request<Chat>('chat.direct', { with: 'bob' })
      const secret = await alice.request<Chat>('chat.direct', { with: 'bob', encrypted: true })
      assert.match(plain.id, /^d_/)
      assert.match(secret.id, /^e_d\./)
      assert.deepEqual(
        [secret.kind, secret.encrypted, secret.name, secret.members.map((m) => m.role)],
        ['direct', true, null, ['member', 'member']],
      )
      assert.equal((await bob.request<Chat>('chat.direct', { with: 'alice', encrypted: true })).id, secret.id)
      assert.equal((await bob.request<Chat>('chat.direct', { with: 'alice' })).id, plain.id)
      assert.equal((await alice.request<Chat>('chat.get', { chatId: plain.id })).encrypted, false)
      // Concurrent first calls from both sides make one chat (the store's pair key settles it).
      const carol = await connect('carol', 'phone')
      const dave = await connect('dave', 'phone')
      const both = await Promise.all([
        carol.request<Chat>('chat.direct', { with: 'dave', encrypted: true }),
        dave.request<Chat>('chat.direct', { with: 'carol', encrypted: true }),
        carol.request<Chat>('chat.direct', { with: 'dave', encrypted: true }),
      ])
      assert.equal(new Set(both.map((c) => c.id)).size, 1)
      const chats = await carol.request<{ chats: Chat[] }>('chat.list')
      assert.equal(chats.chats.filter((c) => c.encrypted && c.kind === 'direct').length, 1)
      // Text is refused, as in any encrypted chat; members do not change.
      await assert.rejects(alice.request('send', { chatId: secret.id, clientMsgId: 'plain', text: 'hi' }), {
        code: 'not_allowed',
      })
      await assert.rejects(alice.request('chat.add', { chatId: secret.id, members: ['carol'] }), {
        code: 'not_allowed',
      })
      await assert.rejects(bob.request('chat.leave', { chatId: secret.id }), { code: 'not_allowed' })
    })

    it('its MLS group: either user opens it; no third user is added; each removes only their own devices', async () => {
      const erin = await connect('erin', 'phone')
      const erinLaptop = await connect('erin', 'laptop')
      const frank = await connect('frank', 'phone')
      const gina = await connect('gina', 'phone')
      const chatId = (await erin.request<Chat>('chat.direct', { with: 'frank', encrypted: true })).id
      // Both of Erin's devices have a KeyPackage for Frank to claim.
      await uploadedMember(erin)
      const el = await uploadedMember(erinLaptop)
      const f = await uploadedMember(frank)
      const g = await uploadedMember(gina)
      // Frank did not create the chat, yet opens its group (a direct chat has no creator in charge).
      await createChatGroup(chatId, f)
      const claimed = await frank.request<Claim>('mls.keypackages.claim', { userId: 'erin' })
      assert.equal(claimed.keyPackages.length, 2)
      const open = await commitAdd(
        f,
        claimed.keyPackages.map((k) => bytesOf(k.keyPackage)),
      )
      assert.equal(
        (await frank.request<{ epoch: number }>('mls.commit', commitParams(chatId, open))).epoch,
        1,
      )
      f.state = open.newState
      // Erin's second opening (her device made its own group at epoch 0) loses: the epoch moved on.
      const late: MlsMember = { identity: 'erin/phone', kp: await newKeyPackage('erin/phone') }
      await createChatGroup(chatId, late)
      await assert.rejects(erin.request('mls.commit', commitParams(chatId, await commitAdd(late, []))), {
        code: 'stale_epoch',
      })
      el.state = await joinFromWelcome(el, open.welcome as Uint8Array)
      // A third user is never added: Gina is no member (a claim of her packages is answered as
      // for a stranger, so this Commit carries one she uploaded).
      assert.deepEqual(await frank.request<Claim>('mls.keypackages.claim', { userId: 'gina' }), {
        keyPackages: [],
      })
      const third = await commitAdd(f, [g.kp.bytes])
      const noThird = await frank.request('mls.commit', commitParams(chatId, third)).then(
        () => assert.fail('a third user added'),
        (err: Error & { code: string }) => err,
      )
      assert.equal(noThird.code, 'invalid_commit')
      assert.match(noThird.message, /gina\/phone, whose user is not a member/)
      // Frank may not remove Erin's devices (no admins here); Erin may remove her own.
      const leaves = await frank.request<{ leaves: { leaf: number; userId: string; deviceId: string }[] }>(
        'mls.group',
        { chatId },
      )
      const laptopLeaf = leaves.leaves.find((l) => l.userId === 'erin' && l.deviceId === 'laptop')?.leaf
      assert.ok(laptopLeaf !== undefined)
      const notHis = await frank
        .request('mls.commit', commitParams(chatId, await commitRemove(f, [laptopLeaf])))
        .then(
          () => assert.fail('Frank removed Erin’s device'),
          (err: Error & { code: string }) => err,
        )
      assert.equal(notHis.code, 'not_allowed')
      assert.match(notHis.message, /in a direct chat each user removes only their own devices/)
      // Erin's laptop removes her phone (its own user's device): accepted.
      const phoneLeaf = leaves.leaves.find((l) => l.userId === 'erin' && l.deviceId === 'phone')
        ?.leaf as number
      const own = await commitRemove(el, [phoneLeaf])
      assert.equal(
        (await erinLaptop.request<{ epoch: number }>('mls.commit', commitParams(chatId, own))).epoch,
        2,
      )
    })

    it('blocks: no new encrypted direct chat with a block either way; in one that exists, the blocker is told to unblock', async () => {
      const hana = await connect('hana', 'phone')
      await connect('ivan', 'phone')
      const jan = await connect('jan', 'phone')
      await jan.request('user.block', { userId: 'hana' })
      for (const [from, to] of [
        [hana, 'jan'],
        [jan, 'hana'],
      ] as const)
        await assert.rejects(from.request('chat.direct', { with: to, encrypted: true }), {
          code: 'not_allowed',
          message: `a direct chat with ${to} cannot be started`,
        })
      const chatId = (await hana.request<Chat>('chat.direct', { with: 'ivan', encrypted: true })).id
      const h = await uploadedMember(hana)
      await createChatGroup(chatId, h)
      const opened = await commitAdd(h, [])
      await hana.request('mls.commit', commitParams(chatId, opened))
      h.state = opened.newState
      await hana.request('user.block', { userId: 'ivan' })
      // The chat that exists is found again, and stays; sending in it is refused to the blocker.
      assert.equal((await hana.request<Chat>('chat.direct', { with: 'ivan', encrypted: true })).id, chatId)
      await assert.rejects(
        hana.request('send', { chatId, clientMsgId: 'x1', ciphertext: base64(await encrypt(h, 'psst')) }),
        { code: 'not_allowed', message: 'you block ivan: unblock them to send in this chat' },
      )
    })
  })
}
