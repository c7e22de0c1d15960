import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import {
  type ChatMessage,
  createClient,
  type DevicesChangedEvent,
  MemoryMlsStorage,
  type NatterClient,
} from '../client-sdk/src/index.ts'
import { decrypt, fromBase64, stateFrom } from '../client-sdk/src/mls/codec.ts'
import { FileMlsStorage } from '../client-sdk/src/mls/file-storage.ts'
import { STORE_BACKENDS, useBackendNode } from './helpers/backend-node.ts'
import { holdsTexts, MlsDevices, texts } from './helpers/sdk-mls-clients.ts'

/** `holds` as these tests call it: 60 s for every text to arrive. */
const holds = (c: NatterClient, chatId: string, wanted: string[]) => holdsTexts(c, chatId, wanted, 60_000)

/** The epoch of the last mls_commit event a client holds in a chat. */
const lastCommitEpoch = (c: NatterClient, chatId: string) =>
  c
    .messages(chatId)
    .flatMap((m) => (m.event?.type === 'mls_commit' ? [m.event.epoch as number] : []))
    .at(-1) ?? -1

/** Every file under a directory, recursively (SQLite's database, WAL and shared-memory files). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

for (const backend of STORE_BACKENDS) {
  describe(`the SDK as an MLS client on ${backend}`, () => {
    let keysDir: string
    // One device keeps its keys in a file, as a Node app would; the others in memory.
    const mls = new MlsDevices((userId, deviceId) =>
      userId === 'alice' && deviceId === 'phone'
        ? new FileMlsStorage(keysDir, userId, deviceId)
        : new MemoryMlsStorage(),
    )
    const { clients, storages } = mls
    const server = useBackendNode(backend, async () => {
      await mls.closeAll()
      if (keysDir) rmSync(keysDir, { recursive: true, force: true })
    })
    let alicePhone: NatterClient
    let aliceLaptop: NatterClient
    let bob: NatterClient
    let carol: NatterClient
    let chatId: string

    /** A device with MLS keys in its own storage (kept across its clients, like a device's disk). */
    const device = (userId: string, deviceId: string) => mls.connect(server.node, userId, deviceId)

    before(async () => {
      keysDir = mkdtempSync(join(tmpdir(), 'natter-mls-keys-'))
      alicePhone = await device('alice', 'phone')
      aliceLaptop = await device('alice', 'laptop')
      bob = await device('bob', 'phone')
      carol = await device('carol', 'phone')
    })

    it('uploads a batch of KeyPackages and a last-resort one at connect, keys in a 0600 file', async () => {
      assert.deepEqual(await bob.request('mls.keypackages.count'), { count: 20, lastResort: true })
      const file = (storages.get('alice/phone') as FileMlsStorage).path
      assert.equal(statSync(file).mode & 0o777, 0o600)
      const record = JSON.parse(readFileSync(file, 'utf8'))
      assert.equal(record.identity, 'alice/phone')
      assert.equal(Object.keys(record.keyPackages).length, 21)
    })

    it('Alice (2 devices), Bob and Carol exchange messages in an encrypted group; the store holds none of the text', async () => {
      const chat = await alicePhone.createGroup('secret plans', ['bob', 'carol'], { encrypted: true })
      chatId = chat.id
      assert.match(chatId, /^e_/)
      await Promise.all([aliceLaptop, bob, carol].map((c) => c.whenEncryptionReady(chatId)))
      const said = [
        'alpha from alice phone',
        'bravo from alice laptop',
        'charlie from bob',
        'delta from carol',
      ]
      const senders = [alicePhone, aliceLaptop, bob, carol]
      for (const [i, c] of senders.entries()) await c.send(chatId, { text: said[i] as string }).sent
      await Promise.all(senders.map((c) => holds(c, chatId, said)))
      const seen = bob.messages(chatId).filter((m) => m.kind === 'text')
      assert.ok(
        seen.every((m) => m.encrypted === true && m.undecryptable === undefined && !('ciphertext' in m)),
      )
      // Each device's own messages in order, as for a plaintext chat.
      assert.deepEqual(texts(carol, chatId), said)
      // The chat list shows the last message as read on the device (the server holds ciphertext).
      await bob.loadChats()
      assert.equal(bob.chat(chatId).lastMessage?.text, 'delta from carol')
      if (backend === 'SQLite') {
        const bytes = Buffer.concat(filesUnder(server.node.dataDir).map((f) => readFileSync(f)))
        for (const text of said) assert.equal(bytes.includes(text), false, `"${text}" is in the store files`)
        assert.ok(
          bytes.includes('secret plans'),
          'the search read the store (the chat name is server-visible)',
        )
      }
    })

    it('tells the same safety number to both sides, and a new one when devices change', async () => {
      const a = await alicePhone.safetyNumber(chatId, 'bob')
      const b = await bob.safetyNumber(chatId, 'alice')
      assert.match(a, /^(\d{5} ){11}\d{5}$/)
      assert.equal(a, b)
      assert.notEqual(await alicePhone.safetyNumber(chatId, 'carol'), a)
      assert.deepEqual(bob.devicesOf(chatId, 'alice'), ['laptop', 'phone'])
      assert.notEqual(
        await bob.safetyNumber(chatId, 'alice', 'phone'),
        await bob.safetyNumber(chatId, 'alice', 'laptop'),
      )
    })

    it('Carol removed: her device cannot decrypt what is sent after', async () => {
      const carolKeys = (await storages.get('carol/phone')?.load())?.groups[chatId]
      assert.ok(carolKeys, 'Carol’s device holds the group')
      const removed = carol.next('chat.removed')
      const changed = bob.next('devices.changed', (e) => e.userId === 'carol')
      await alicePhone.removeMember(chatId, 'carol')
      assert.deepEqual(await removed, { chatId, reason: 'removed' })
      assert.deepEqual(await changed, {
        chatId,
        userId: 'carol',
        devices: [],
        added: [],
        removed: ['phone'],
        epoch: (await changed).epoch,
      } satisfies DevicesChangedEvent)
      await alicePhone.send(chatId, { text: 'echo after carol left' }).sent
      await holds(bob, chatId, ['echo after carol left'])
      const page = await alicePhone.request<{ messages: ChatMessage[] }>('history', { chatId, limit: 1 })
      const ciphertext = page.messages[0]?.ciphertext
      assert.ok(ciphertext)
      // Carol's device's last state (it never gets the Commit: it is out of the chat): no key for it.
      await assert.rejects(decrypt(stateFrom(fromBase64(carolKeys.state)), fromBase64(ciphertext)))
      // And the device forgot the group's secrets when the chat went.
      assert.equal((await storages.get('carol/phone')?.load())?.groups[chatId], undefined)
      // While her chat state stays, read-only, with the plaintext she saw.
      const gone = carol.chat(chatId)
      assert.equal(gone.removed, true)
      assert.ok(gone.messages.some((m) => m.text === 'delta from carol' && m.encrypted === true))
    })

    it('chat.rename and chat.role in an encrypted chat: plaintext chat events, no Commit, the group goes on', async () => {
      const epoch = lastCommitEpoch(bob, chatId)
      const events: string[] = []
      const off = bob.on('membership', (e) => events.push(`${e.type} by ${e.by}`))
      const renamed = bob.next('name.updated', (e) => e.chatId === chatId)
      await alicePhone.chat(chatId).rename('secret plans, v2')
      assert.equal((await renamed).name, 'secret plans, v2')
      const promoted = bob.next('members.updated', (e) =>
        e.members.some((m) => m.userId === 'bob' && m.role === 'admin'),
      )
      assert.equal((await alicePhone.chat(chatId).setRole('bob', 'admin')).changed, true)
      await promoted
      off()
      assert.deepEqual(events, ['chat_renamed by alice', 'member_role by alice'])
      // Names and roles are the chat's, not the MLS group's: no Commit, and messages still decrypt.
      assert.equal(lastCommitEpoch(bob, chatId), epoch)
      await alicePhone.send(chatId, { text: 'golf after the rename' }).sent
      await holds(bob, chatId, ['golf after the rename'])
      assert.equal(
        await bob
          .chat(chatId)
          .setRole('bob', 'member')
          .then((r) => r.role),
        'member',
      )
    })

    it('Bob’s new device reads what is sent after it joined', async () => {
      const tablet = await device('bob', 'tablet')
      const changed = alicePhone.next('devices.changed', (e) => e.userId === 'bob')
      assert.deepEqual(await bob.addOwnDevices(), [chatId])
      await tablet.whenEncryptionReady(chatId)
      assert.deepEqual((await changed).added, ['tablet'])
      await alicePhone.send(chatId, { text: 'foxtrot for the tablet' }).sent
      await tablet.open(chatId)
      await holds(tablet, chatId, ['foxtrot for the tablet'])
      const before = tablet.messages(chatId).filter((m) => m.kind === 'text' && m.text === null)
      assert.ok(
        before.length > 0 && before.every((m) => m.undecryptable),
        'what came before stays unreadable',
      )
    })

    it('a device of the user without MLS is claimed for once, not at every call', async () => {
      const web = await createClient({
        url: server.node.mqttUrl,
        userId: 'bob',
        deviceId: 'web',
        getToken: () => server.node.token('bob'),
      })
      clients.push(web)
      const tablet = clients.find((c) => c.clientId === 'bob/tablet') as NatterClient
      const stock = async () => (await tablet.request<{ count: number }>('mls.keypackages.count')).count
      // The device list is written as the connection is set up: asked until it names the new one.
      const listed = async () =>
        (await bob.request<{ devices: { deviceId: string }[] }>('devices.list')).devices.some(
          (d) => d.deviceId === 'web',
        )
      for (let i = 0; !(await listed()); i++) assert.ok(i < 500, 'bob/web never listed')
      const before = await stock()
      assert.deepEqual(await bob.addOwnDevices(), [])
      assert.equal(await stock(), before - 1, 'the claim took one of the tablet’s packages')
      assert.deepEqual(await bob.addOwnDevices(), [])
      assert.equal(await stock(), before - 1, 'no second claim')
      await web.close()
    })

    it('chat.add in an encrypted chat adds the devices with a Welcome; after chat.leave an admin’s device removes them', async () => {
      const dave = await device('dave', 'phone')
      const joined = bob.next('devices.changed', (e) => e.userId === 'dave')
      assert.deepEqual(await alicePhone.chat(chatId).addMembers(['dave']), { added: ['dave'] })
      assert.deepEqual((await joined).added, ['phone'])
      await dave.whenEncryptionReady(chatId)
      assert.equal(dave.chat(chatId).encrypted, true)
      assert.equal(await dave.chat(chatId).safetyNumber('bob'), await bob.chat(chatId).safetyNumber('dave'))
      await bob.send(chatId, { text: 'india for dave' }).sent
      await holds(dave, chatId, ['india for dave'])
      const left = bob.next('devices.changed', (e) => e.userId === 'dave')
      await dave.leave(chatId)
      assert.deepEqual((await left).removed, ['phone'])
      // One device made that Commit: the admins' device at the lowest leaf (Alice's phone, leaf 0).
      const removal = bob
        .messages(chatId)
        .filter((m) => m.event?.type === 'mls_commit')
        .at(-1)
      assert.equal(`${removal?.senderId}/${removal?.deviceId}`, 'alice/phone')
      assert.deepEqual(bob.devicesOf(chatId, 'dave'), [])
    })

    it('two members commit at once: one wins, the other rebases without app action', async () => {
      const refusals: string[] = []
      for (const c of [alicePhone, bob]) {
        const request = c.request.bind(c)
        c.request = (async (op: string, params?: Record<string, unknown>) =>
          request(op, params).catch((err: { code?: string }) => {
            if (err.code === 'stale_epoch') refusals.push(`${c.clientId}: ${(err as Error).message}`)
            throw err
          })) as typeof c.request
      }
      const epochBefore = lastCommitEpoch(bob, chatId)
      await Promise.all([alicePhone.updateKeys(chatId), bob.updateKeys(chatId)])
      assert.equal(
        refusals.length,
        1,
        `exactly one Commit refused as stale, then made again: ${refusals.join('; ')}`,
      )
      await bob.sync(chatId)
      // Both landed, one epoch after the other: no fork.
      assert.deepEqual(
        bob
          .messages(chatId)
          .flatMap((m) => (m.event?.type === 'mls_commit' ? [m.event.epoch] : []))
          .slice(-2),
        [epochBefore + 1, epochBefore + 2],
      )
      await alicePhone.send(chatId, { text: 'golf after the race' }).sent
      await bob.send(chatId, { text: 'hotel after the race' }).sent
      await Promise.all(
        [alicePhone, aliceLaptop, bob].map((c) =>
          holds(c, chatId, ['golf after the race', 'hotel after the race']),
        ),
      )
    })

    it('a device offline across 3 epochs and 100 messages catches up in order', async (tc) => {
      await aliceLaptop.close()
      const offlineFrom = alicePhone.heldUpTo(chatId)
      const sent: string[] = []
      for (let i = 0; i < 100; i++) {
        const text = `offline message ${i}`
        sent.push(text)
        await (i % 2 ? bob : alicePhone).send(chatId, { text }).sent
        // Three epochs go by, committed by both sides.
        if (i === 20 || i === 80) await alicePhone.updateKeys(chatId)
        if (i === 50) await bob.updateKeys(chatId)
      }
      const started = performance.now()
      const laptop = await device('alice', 'laptop')
      await laptop.open(chatId)
      await holds(laptop, chatId, sent)
      const ms = performance.now() - started
      const got = texts(laptop, chatId).filter((s) => s.startsWith('offline message '))
      assert.deepEqual(got, sent)
      const commits = laptop
        .messages(chatId)
        .filter((m) => m.event?.type === 'mls_commit' && m.seq > offlineFrom)
      assert.equal(
        commits.length,
        3,
        JSON.stringify(
          laptop
            .messages(chatId)
            .filter((m) => m.kind === 'event')
            .map((m) => [m.seq, m.event?.type, m.event?.epoch]),
        ),
      )
      assert.equal(lastCommitEpoch(laptop, chatId), lastCommitEpoch(alicePhone, chatId))
      tc.diagnostic(`${backend}: caught up 100 messages and 3 Commits in ${Math.round(ms)} ms`)
    })
  })
}
