import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  type ChatMessage,
  createClient,
  MemoryMlsStorage,
  type NatterClient,
} from '../client-sdk/src/index.ts'
import { clusterSecret } from './helpers/cluster.ts'
import { FakeApns, makeCert, type Received, type TestCert } from './helpers/fake-push.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { localNodeEnv, logEvent, type Proc, run } from './helpers/processes.ts'

/**
 * Push for encrypted chats (docs/e2ee.md §4) on both stores, as a phone sees it: a node process
 * with APNs against a local endpoint, SDK clients as MLS devices. The device that is away gets
 * "New message" under the chat's name (a group) or the sender (a direct chat): never text,
 * never ciphertext.
 */
for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`push for encrypted chats on ${backend} (a node process, APNs)`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'natter-push-e2ee-'))
    const { secret, token } = clusterSecret()
    let cert: TestCert
    let apns: FakeApns
    let ferret: FerretDb | undefined
    let node: Proc | undefined
    let url = ''
    const clients: NatterClient[] = []
    const storages = new Map<string, MemoryMlsStorage>()
    const device = async (userId: string) => {
      const storage = storages.get(userId) ?? new MemoryMlsStorage()
      storages.set(userId, storage)
      const c = await createClient({
        url,
        userId,
        deviceId: 'phone',
        getToken: () => token(userId),
        mls: { storage },
      })
      clients.push(c)
      await c.keyPackagesReady()
      return c
    }
    const pushToken = 'e2ee'.repeat(16)

    before(async () => {
      cert = makeCert()
      apns = await new FakeApns(cert.dir).start(cert)
      if (backend !== 'SQLite') ferret = await startFerretDb()
      node = run('sh', ['bin/natter', 'start'], {
        ...localNodeEnv(dataDir, secret),
        ...(ferret ? { NATTER_MONGODB_URI: ferret.uri } : {}),
        NATTER_LOG_LEVEL: 'info',
        NATTER_PUSH_GRACE_MS: '500',
        NATTER_APNS_KEY_FILE: apns.keyFile,
        NATTER_APNS_KEY_ID: apns.keyId,
        NATTER_APNS_TEAM_ID: apns.teamId,
        NATTER_APNS_ADDRESS: `127.0.0.1:${apns.port}`,
        // The local endpoint's certificate, trusted as Apple's is through the system store.
        NODE_EXTRA_CA_CERTS: cert.certFile,
      })
      const { ports } = JSON.parse(await node.waitFor(logEvent('listening'), 120_000))
      url = `mqtt://127.0.0.1:${ports.mqtt}`
    })
    after(async () => {
      for (const c of clients) await c.close().catch(() => {})
      await node?.stop()
      await ferret?.stop()
      await apns?.close()
      cert?.cleanup()
      rmSync(dataDir, { recursive: true, force: true })
    })

    it('an encrypted group and an encrypted direct chat: each push says "New message", with no text and no ciphertext', async () => {
      const alice = await device('alice')
      let bob = await device('bob')
      await bob.request('push.register', {
        platform: 'apns',
        token: pushToken,
        apnsTopic: 'com.example.natter',
        sandbox: true,
        locale: 'en-GB',
      })
      const group = (await alice.createGroup('Vault', ['bob'], { encrypted: true })).id
      const direct = (await alice.direct('bob', { encrypted: true })).id
      await bob.whenEncryptionReady(group)
      await bob.whenEncryptionReady(direct)
      await bob.close()

      /** Sends a text and returns the one push it caused, with the message's ciphertext. */
      const pushFor = async (
        chatId: string,
        text: string,
      ): Promise<{ push: Received; ciphertext: string }> => {
        const before = apns.received.length
        await alice.send(chatId, { text }).sent
        await apns.waitFor(before + 1)
        const push = apns.received[before] as Received
        const page = await alice.request<{ messages: ChatMessage[] }>('history', { chatId, limit: 1 })
        return { push, ciphertext: page.messages[0]?.ciphertext as string }
      }
      const cases = [
        { chatId: group, text: 'the vault code is 4711', secret: '4711', title: 'Vault' },
        { chatId: direct, text: 'the door code is 2580', secret: '2580', title: 'alice' },
      ]
      for (const c of cases) {
        const { push, ciphertext } = await pushFor(c.chatId, c.text)
        assert.deepEqual(push.problems, [])
        assert.equal(push.path, `/3/device/${pushToken}`)
        assert.equal(push.headers['apns-collapse-id'], c.chatId)
        const aps = push.body.aps as { alert: { title: string; body: string }; badge: number }
        assert.deepEqual(aps.alert, { title: c.title, body: 'New message' })
        assert.ok(ciphertext, 'the message is ciphertext on the server')
        const wire = JSON.stringify({ headers: push.headers, body: push.body })
        assert.ok(!wire.includes(c.secret), `the text is in the push: ${wire}`)
        assert.ok(!wire.includes(ciphertext.slice(0, 24)), `ciphertext is in the push: ${wire}`)
      }
      // Back, Bob's device reads both.
      bob = await device('bob')
      for (const c of cases) {
        await bob.open(c.chatId)
        const has = () => bob.messages(c.chatId).some((m) => m.text === c.text)
        if (!has()) await bob.next('message', has)
      }
    })
  })
}
