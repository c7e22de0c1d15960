import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { NatterClient } from '../client-sdk/src/index.ts'
import { STORE_BACKENDS, useBackendNode } from './helpers/backend-node.ts'
import { holdsText, MlsDevices, texts, within } from './helpers/sdk-mls-clients.ts'

// The SDK gaps the web chat found (issue 20): a retry with new text in an encrypted chat, devices
// of members added after their user, and own devices that had no KeyPackages at the first look.

/** The gaps' messages wait longer than the other files' (30 s): `holds` as these tests call it. */
const holds = (c: NatterClient, chatId: string, text: string) => holdsText(c, chatId, text, 30_000)

for (const backend of STORE_BACKENDS) {
  describe(`SDK gaps in encrypted chats on ${backend}`, () => {
    const mls = new MlsDevices()
    const server = useBackendNode(backend, () => mls.closeAll())
    let alice: NatterClient
    let bob: NatterClient
    let chatId: string

    /** A device with MLS keys kept across its clients (like a device's disk); `mls: false` signs in without. */
    const device = (userId: string, deviceId: string, o: { mls?: boolean } = {}) =>
      mls.connect(server.node, userId, deviceId, o)

    /** Whether devices.list names the device yet (it is written as the connection is set up). */
    async function listed(c: NatterClient, deviceId: string): Promise<void> {
      for (let i = 0; ; i++) {
        const r = await c.request<{ devices: { deviceId: string }[] }>('devices.list')
        if (r.devices.some((d) => d.deviceId === deviceId)) return
        assert.ok(i < 500, `${deviceId} never listed`)
      }
    }

    before(async () => {
      alice = await device('alice', 'phone')
      bob = await device('bob', 'phone')
      // Dave is a member before he ever signed in: none of his devices has KeyPackages.
      chatId = (await alice.createGroup('gaps', ['bob', 'dave'], { encrypted: true })).id
      await bob.whenEncryptionReady(chatId)
      assert.deepEqual(bob.devicesOf(chatId, 'dave'), [])
    })

    it('a refused message retried with new text is encrypted again: the other member reads the new text', async () => {
      // Over the 64 KiB ciphertext limit: the server refuses it, nothing is stored.
      const first = alice.send(chatId, { text: 'x'.repeat(70_000) })
      await assert.rejects(first.sent)
      const retried = alice.retry(first.localId, { text: 'kilo, shorter this time' })
      await retried.sent
      await holds(bob, chatId, 'kilo, shorter this time')
      assert.equal(
        texts(bob, chatId).some((s) => s.startsWith('xxx')),
        false,
      )
      // The sender shows what it sent the second time, under the same local id.
      const mine = alice.messages(chatId).find((m) => m.clientMsgId === first.localId)
      assert.equal(mine?.text, 'kilo, shorter this time')
    })

    it('a member added before signing in: an admin’s addMembers adds his device later, a member’s addDevices his next one', async () => {
      const davePhone = await device('dave', 'phone')
      const joined = bob.next('devices.changed', (e) => e.userId === 'dave')
      // Dave is a member already: nobody is added to the chat, his device is added to the group.
      assert.deepEqual(await alice.chat(chatId).addMembers(['dave']), { added: [] })
      assert.deepEqual((await within(joined, 'dave/phone added')).added, ['phone'])
      await within(davePhone.whenEncryptionReady(chatId), 'dave/phone in the group')
      await bob.send(chatId, { text: 'lima for dave' }).sent
      await holds(davePhone, chatId, 'lima for dave')
      // His laptop signs in later; Bob, not an admin, adds it (the DS takes Adds of members' devices from any member).
      const daveLaptop = await device('dave', 'laptop')
      assert.deepEqual(await bob.chat(chatId).addDevices(['dave']), ['dave/laptop'])
      await within(daveLaptop.whenEncryptionReady(chatId), 'dave/laptop in the group')
      assert.deepEqual(alice.devicesOf(chatId, 'dave'), ['laptop', 'phone'])
      // Nothing left to add: a second call commits nothing.
      assert.deepEqual(await bob.addDevices(chatId, ['dave']), [])
      await alice.send(chatId, { text: 'mike for both of dave’s devices' }).sent
      await holds(daveLaptop, chatId, 'mike for both of dave’s devices')
      // Erin signed in with MLS but shares no chat with Bob: the directory hands out none of her packages.
      await device('erin', 'phone')
      assert.deepEqual(await bob.addDevices(chatId, ['erin']), [])
      assert.deepEqual(alice.devicesOf(chatId, 'erin'), [])
    })

    it('an own device without KeyPackages at the first look is looked for again at the next connect, once per connect', async () => {
      const web = await device('bob', 'web', { mls: false })
      await listed(bob, 'web')
      assert.deepEqual(await bob.addOwnDevices(), [])
      await web.close()
      // The same device signs in with MLS now: it has KeyPackages.
      const webWithMls = await device('bob', 'web')
      const stock = async () => (await webWithMls.request<{ count: number }>('mls.keypackages.count')).count
      const before = await stock()
      assert.deepEqual(await bob.addOwnDevices(), [], 'skipped for the rest of this connection')
      assert.equal(await stock(), before, 'and not claimed for')
      // Bob's phone reconnects: its connect looks again and adds the web device.
      const back = bob.next('state', (s) => s === 'connected')
      bob.mqtt.stream.destroy()
      await back
      await within(webWithMls.whenEncryptionReady(chatId), 'bob/web added at the reconnect')
      assert.deepEqual(alice.devicesOf(chatId, 'bob').sort(), ['phone', 'web'])
      await alice.send(chatId, { text: 'november for bob’s web device' }).sent
      await holds(webWithMls, chatId, 'november for bob’s web device')
    })
  })
}
