import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import {
  type ChatMessage,
  createClient,
  type DevicesChangedEvent,
  type NatterClient,
} from '../client-sdk/src/index.ts'
import { decrypt, fromBase64, stateFrom } from '../client-sdk/src/mls/codec.ts'
import { STORE_BACKENDS, useBackendNode } from './helpers/backend-node.ts'
import { Device } from './helpers/device.ts'
import {
  commitAdd,
  commitParams,
  commitRemove,
  createChatGroup,
  type MlsMember,
  newKeyPackage,
} from './helpers/mls.ts'
import { holdsText, MlsDevices, within } from './helpers/sdk-mls-clients.ts'

// Issue 20: a device revoked (signed out) leaves its encrypted chats' groups without any app
// call: the server tells each chat (an mls_device_revoked event), one member's device commits the
// Remove. And the reason given for messages from before a device joined, after a reload.

/** `holds` as these tests call it: 20 s for a message to arrive. */
const holds = (c: NatterClient, chatId: string, text: string) => holdsText(c, chatId, text, 20_000)

for (const backend of STORE_BACKENDS) {
  describe(`a revoked device leaves its encrypted chats on ${backend}`, () => {
    const mls = new MlsDevices()
    const { clients, storages } = mls
    const server = useBackendNode(backend, () => mls.closeAll())
    let alice: NatterClient
    let bobPhone: NatterClient
    let bobLaptop: NatterClient
    let carol: NatterClient
    let group: string
    let direct: string

    /** A device with MLS keys kept across its clients (like a device's disk). */
    const device = (userId: string, deviceId: string) => mls.connect(server.node, userId, deviceId)

    before(async () => {
      alice = await device('alice', 'phone')
      bobPhone = await device('bob', 'phone')
      bobLaptop = await device('bob', 'laptop')
      carol = await device('carol', 'phone')
      group = (await alice.createGroup('revoke', ['bob', 'carol'], { encrypted: true })).id
      direct = (await alice.direct('bob', { encrypted: true })).id
      for (const c of [bobPhone, bobLaptop]) {
        await within(c.whenEncryptionReady(group), `${c.clientId} in the group`)
        await within(c.whenEncryptionReady(direct), `${c.clientId} in the direct chat`)
      }
      await within(carol.whenEncryptionReady(group), 'carol in the group')
      assert.deepEqual(alice.devicesOf(group, 'bob'), ['laptop', 'phone'])
      assert.deepEqual(alice.devicesOf(direct, 'bob'), ['laptop', 'phone'])
    })

    it('Bob revokes his laptop: a Commit removes it from the group and the direct chat, with no app call', async () => {
      await alice.send(group, { text: 'alpha, laptop still in' }).sent
      await holds(bobLaptop, group, 'alpha, laptop still in')
      await holds(carol, group, 'alpha, laptop still in')
      const laptopKeys = {
        group: (await storages.get('bob/laptop')?.load())?.groups[group],
        direct: (await storages.get('bob/laptop')?.load())?.groups[direct],
      }
      assert.ok(laptopKeys.group && laptopKeys.direct)
      // Carol is offline across the revoke: she catches up on it later.
      const carolStorage = storages.get('carol/phone')
      await carol.close()
      const removed = (c: NatterClient, chatId: string) =>
        within(
          c.next('devices.changed', (e) => e.chatId === chatId && e.userId === 'bob'),
          `${c.clientId}: devices.changed in ${chatId}`,
        )
      const inGroup = removed(alice, group)
      const inDirect = removed(alice, direct)
      const bobSeesGroup = removed(bobPhone, group)
      const bobSeesDirect = removed(bobPhone, direct)
      const r = await bobPhone.request<{ deviceId: string }>('device.revoke', { deviceId: 'laptop' })
      assert.equal(r.deviceId, 'laptop')
      for (const [what, e] of [
        ['group', await inGroup],
        ['direct', await inDirect],
        ['bob group', await bobSeesGroup],
        ['bob direct', await bobSeesDirect],
      ] as const) {
        assert.deepEqual(
          { ...e, epoch: 0 },
          {
            chatId: e.chatId,
            userId: 'bob',
            devices: ['phone'],
            added: [],
            removed: ['laptop'],
            epoch: 0,
          } satisfies DevicesChangedEvent,
          what,
        )
      }
      assert.deepEqual(alice.devicesOf(group, 'bob'), ['phone'])
      assert.deepEqual(alice.devicesOf(direct, 'bob'), ['phone'])
      // Both sides compute the same safety number from the same leaves: the laptop is in neither.
      for (const chatId of [group, direct])
        assert.equal(await alice.safetyNumber(chatId, 'bob'), await bobPhone.safetyNumber(chatId, 'alice'))
      // The chats hold the server's event, then the Commit removing the laptop.
      const events = alice.messages(direct).flatMap((m) => (m.kind === 'event' ? [m.event?.type] : []))
      assert.deepEqual(events.slice(-2), ['mls_device_revoked', 'mls_commit'])
      const g = await alice.request<{ revoked: number[]; leaves: { deviceId: string }[] }>('mls.group', {
        chatId: group,
      })
      assert.deepEqual(g.revoked, [])
      assert.equal(
        g.leaves.some((l) => l.deviceId === 'laptop'),
        false,
      )

      // What follows cannot be decrypted with the laptop's last state.
      await alice.send(group, { text: 'bravo, laptop gone' }).sent
      await alice.send(direct, { text: 'charlie, direct, laptop gone' }).sent
      await holds(bobPhone, group, 'bravo, laptop gone')
      await holds(bobPhone, direct, 'charlie, direct, laptop gone')
      for (const [chatId, keys] of [
        [group, laptopKeys.group],
        [direct, laptopKeys.direct],
      ] as const) {
        const page = await alice.request<{ messages: ChatMessage[] }>('history', { chatId, limit: 1 })
        const ciphertext = page.messages[0]?.ciphertext
        assert.ok(ciphertext && keys)
        await assert.rejects(decrypt(stateFrom(fromBase64(keys.state)), fromBase64(ciphertext)))
      }

      // Carol comes back: she applies the Commit in order and reads what followed.
      assert.ok(carolStorage)
      const carolChanged: DevicesChangedEvent[] = []
      const back = await createClient({
        url: server.node.mqttUrl,
        userId: 'carol',
        deviceId: 'phone',
        getToken: () => server.node.token('carol'),
        mls: { storage: carolStorage },
      })
      clients.push(back)
      back.on('devices.changed', (e) => carolChanged.push(e))
      await back.open(group)
      await holds(back, group, 'bravo, laptop gone')
      assert.deepEqual(back.devicesOf(group, 'bob'), ['phone'])
      assert.deepEqual(
        carolChanged.map((e) => [e.userId, e.removed]),
        [['bob', ['laptop']]],
      )
      assert.equal(await back.safetyNumber(group, 'bob'), await bobPhone.safetyNumber(group, 'carol'))
    })

    it('the DS lets the other side of a direct chat remove a device only once it is revoked', async () => {
      const connect = async (userId: string, deviceId: string) => {
        const d = await Device.connect(server.node.mqttUrl, userId, deviceId, await server.node.token(userId))
        const member: MlsMember = {
          identity: `${userId}/${deviceId}`,
          kp: await newKeyPackage(`${userId}/${deviceId}`),
        }
        await d.request('mls.keypackages.upload', { keyPackages: [member.kp.base64] })
        return { d, member }
      }
      const gina = await connect('gina', 'phone')
      const hank = await connect('hank', 'phone')
      const hankLaptop = await connect('hank', 'laptop')
      try {
        const chatId = (
          await gina.d.request<{ id: string }>('chat.direct', { with: 'hank', encrypted: true })
        ).id
        await createChatGroup(chatId, gina.member)
        const claimed = await gina.d.request<{ keyPackages: { keyPackage: string }[] }>(
          'mls.keypackages.claim',
          { userId: 'hank' },
        )
        const open = await commitAdd(
          gina.member,
          claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
        )
        await gina.d.request('mls.commit', commitParams(chatId, open))
        gina.member.state = open.newState
        type Group = { leaves: { leaf: number; userId: string; deviceId: string }[]; revoked: number[] }
        const leafOf = (g: Group, deviceId: string) =>
          g.leaves.find((l) => l.userId === 'hank' && l.deviceId === deviceId)?.leaf ?? -1
        let g = await gina.d.request<Group>('mls.group', { chatId })
        assert.deepEqual(g.revoked, [])
        // Hank's devices are his while they are not revoked.
        for (const deviceId of ['phone', 'laptop'])
          await assert.rejects(
            gina.d.request(
              'mls.commit',
              commitParams(chatId, await commitRemove(gina.member, [leafOf(g, deviceId)])),
            ),
            (err: Error & { code?: string }) =>
              err.code === 'not_allowed' && /each user removes only their own devices/.test(err.message),
          )
        await hank.d.request('device.revoke', { deviceId: 'laptop' })
        await gina.d.until(
          () => gina.d.messages(chatId).some((e) => e.event?.type === 'mls_device_revoked'),
          'the mls_device_revoked event',
        )
        const event = gina.d.messages(chatId).find((e) => e.event?.type === 'mls_device_revoked')
        assert.deepEqual(event?.event, { type: 'mls_device_revoked', userId: 'hank', deviceId: 'laptop' })
        assert.equal(event?.senderId, 'hank')
        g = await gina.d.request<Group>('mls.group', { chatId })
        assert.deepEqual(g.revoked, [leafOf(g, 'laptop')])
        // Still not his phone; his revoked laptop, yes.
        await assert.rejects(
          gina.d.request(
            'mls.commit',
            commitParams(chatId, await commitRemove(gina.member, [leafOf(g, 'phone')])),
          ),
          { code: 'not_allowed' },
        )
        const out = await commitRemove(gina.member, [leafOf(g, 'laptop')])
        await gina.d.request('mls.commit', commitParams(chatId, out))
        g = await gina.d.request<Group>('mls.group', { chatId })
        assert.deepEqual(g.leaves.map((l) => l.deviceId).sort(), ['phone', 'phone'])
        assert.deepEqual(g.revoked, [])
      } finally {
        for (const x of [gina, hank, hankLaptop]) await x.d.close().catch(() => {})
      }
    })

    it('after a reload, messages from before the device joined say so', async () => {
      await alice.send(group, { text: 'delta, before the tablet' }).sent
      const tablet = await device('bob', 'tablet')
      assert.deepEqual((await bobPhone.addOwnDevices()).sort(), [group, direct].sort())
      await within(tablet.whenEncryptionReady(group), 'tablet in the group')
      await alice.send(group, { text: 'echo, for the tablet' }).sent
      await tablet.open(group)
      await holds(tablet, group, 'echo, for the tablet')
      const reasons = (c: NatterClient) =>
        new Set(
          c
            .messages(group)
            .filter((m) => m.kind === 'text' && m.text === null)
            .map((m) => m.undecryptable),
        )
      assert.deepEqual([...reasons(tablet)], ['this device is not in the group'])
      await tablet.close()
      const again = await device('bob', 'tablet')
      await again.open(group)
      await holds(again, group, 'echo, for the tablet')
      assert.deepEqual([...reasons(again)], ['this device is not in the group'])
    })
  })
}
