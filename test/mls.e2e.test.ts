import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Device, type InboxEvent } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import {
  base64,
  commitAdd,
  commitParams,
  commitRemove,
  createChatGroup,
  decrypt,
  encrypt,
  epochOf,
  joinFromWelcome,
  type MlsMember,
  newKeyPackage,
  receive,
} from './helpers/mls.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

async function refused(work: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  const err = (await work.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  )) as Error & { code: string }
  assert.equal(err.code, code, err.message)
  return err
}

type Claim = { keyPackages: { deviceId: string; keyPackage: string; lastResort: boolean }[] }
type CommitEvent = { type: 'mls_commit'; epoch: number; commit: string }

/** The mls_commit events of a chat a device received, in arrival order. */
const commitsSeen = (d: Device, chatId: string) =>
  d.inbox
    .filter((e) => e.type === 'message' && e.chatId === chatId && e.event?.type === 'mls_commit')
    .map((e) => ({ seq: e.seq, senderId: e.senderId, ...(e.event as CommitEvent) }))

/** A device as an MLS client: a fresh KeyPackage it uploaded, ready to be claimed. */
async function mlsDevice(d: Device): Promise<MlsMember> {
  const identity = `${d.userId}/${d.deviceId}`
  const kp = await newKeyPackage(identity)
  await d.request('mls.keypackages.upload', { keyPackages: [kp.base64] })
  return { identity, kp }
}

/** n real KeyPackages of a device, base64 as the ops carry them. */
const packagesOf = async (d: Device, n: number) =>
  Promise.all(
    Array.from({ length: n }, async () => (await newKeyPackage(`${d.userId}/${d.deviceId}`)).base64),
  )

for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`MLS Delivery Service end to end on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alicePhone: Device
    let aliceLaptop: Device
    let bob: Device
    let carol: Device
    const devices: Device[] = []

    before(async () => {
      if (backend === 'SQLite') t = await startTestNode({ NATTER_MLS_MAX_KEY_PACKAGES: '10' })
      else {
        ferret = await startFerretDb()
        t = await startTestNode({ NATTER_MONGODB_URI: ferret.uri, NATTER_MLS_MAX_KEY_PACKAGES: '10' })
      }
      alicePhone = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      aliceLaptop = await Device.connect(t.wsUrl, 'alice', 'laptop', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      devices.push(alicePhone, aliceLaptop, bob, carol)
      await alicePhone.request('chat.direct', { with: 'bob' })
    })
    after(async () => {
      for (const d of devices) await d?.close().catch(() => {})
      await t?.close()
      await ferret?.stop()
    })

    it('stores a device’s KeyPackages and hands each to one claimer, then the last-resort one', async () => {
      const [lastResort, ...batch] = await packagesOf(bob, 3)
      assert.deepEqual(await bob.request('mls.keypackages.upload', { keyPackages: batch, lastResort }), {
        stored: 2,
        count: 2,
        lastResort: true,
      })
      assert.deepEqual(await bob.request('mls.keypackages.count'), { count: 2, lastResort: true })
      type Claim = { keyPackages: { deviceId: string; keyPackage: string; lastResort: boolean }[] }
      const first = await alicePhone.request<Claim>('mls.keypackages.claim', { userId: 'bob' })
      const second = await aliceLaptop.request<Claim>('mls.keypackages.claim', { userId: 'bob' })
      assert.deepEqual(
        [...first.keyPackages, ...second.keyPackages].map((k) => [k.deviceId, k.keyPackage, k.lastResort]),
        [
          ['phone', batch[0], false],
          ['phone', batch[1], false],
        ],
      )
      const third = await alicePhone.request<Claim>('mls.keypackages.claim', { userId: 'bob' })
      assert.deepEqual(third.keyPackages, [{ deviceId: 'phone', keyPackage: lastResort, lastResort: true }])
      assert.deepEqual(await bob.request('mls.keypackages.count'), { count: 0, lastResort: true })
    })

    it('tells a stranger nothing: claims of a user one shares no chat with answer no packages', async () => {
      await bob.request('mls.keypackages.upload', { keyPackages: await packagesOf(bob, 1) })
      assert.deepEqual(await carol.request('mls.keypackages.claim', { userId: 'bob' }), { keyPackages: [] })
      assert.deepEqual(await bob.request('mls.keypackages.count'), { count: 1, lastResort: true })
    })

    it('refuses a KeyPackage of another device, a damaged one, or one that is not a KeyPackage, storing none of the batch', async () => {
      const good = await packagesOf(aliceLaptop, 1)
      const foreign = (await newKeyPackage('alice/phone')).base64
      let err = await refused(
        aliceLaptop.request('mls.keypackages.upload', { keyPackages: [...good, foreign] }),
        'invalid_key_package',
      )
      assert.match(
        err.message,
        /keyPackages\.1: its credential is "alice\/phone", not this device \(alice\/laptop\)/,
      )
      const damaged = Buffer.from((await newKeyPackage('alice/laptop')).bytes)
      damaged[damaged.length - 3] = (damaged[damaged.length - 3] ?? 0) ^ 0xff
      err = await refused(
        aliceLaptop.request('mls.keypackages.upload', { keyPackages: [damaged.toString('base64')] }),
        'invalid_key_package',
      )
      assert.match(err.message, /signature is not valid/)
      err = await refused(
        aliceLaptop.request('mls.keypackages.upload', { keyPackages: ['aGVsbG8='] }),
        'invalid_key_package',
      )
      assert.match(err.message, /not an MLS message/)
      const expired = await newKeyPackage('alice/laptop', { lifetime: { notBefore: 0n, notAfter: 1000n } })
      err = await refused(
        aliceLaptop.request('mls.keypackages.upload', { keyPackages: [expired.base64] }),
        'invalid_key_package',
      )
      assert.match(err.message, /lifetime/)
      await refused(
        aliceLaptop.request('mls.keypackages.upload', { keyPackages: ['not base64!'] }),
        'bad_request',
      )
      await refused(aliceLaptop.request('mls.keypackages.upload', { keyPackages: [] }), 'bad_request')
      assert.deepEqual(await aliceLaptop.request('mls.keypackages.count'), { count: 0, lastResort: false })
    })

    it('refuses an upload past the cap, and one over HTTP (no MLS device)', async () => {
      await alicePhone.request('mls.keypackages.upload', { keyPackages: await packagesOf(alicePhone, 8) })
      const err = await refused(
        alicePhone.request('mls.keypackages.upload', { keyPackages: await packagesOf(alicePhone, 3) }),
        'too_many_key_packages',
      )
      assert.match(err.message, /holds 8 KeyPackages; with 3 more it would pass the cap of 10/)
      assert.deepEqual(await alicePhone.request('mls.keypackages.count'), { count: 8, lastResort: false })
      const res = await fetch(`${t.httpUrl}/v1/mls.keypackages.upload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await t.token('alice')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ keyPackages: await packagesOf(alicePhone, 1) }),
      })
      assert.equal(res.status, 403)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_allowed')
    })

    it('claims one package for each of a user’s devices; a revoked device’s packages are gone', async () => {
      await aliceLaptop.request('mls.keypackages.upload', { keyPackages: await packagesOf(aliceLaptop, 2) })
      type Claim = { keyPackages: { deviceId: string }[] }
      const both = await bob.request<Claim>('mls.keypackages.claim', { userId: 'alice' })
      assert.deepEqual(
        both.keyPackages.map((k) => k.deviceId),
        ['laptop', 'phone'],
      )
      await alicePhone.request('device.revoke', { deviceId: 'laptop' })
      const after = await bob.request<Claim>('mls.keypackages.claim', { userId: 'alice' })
      assert.deepEqual(
        after.keyPackages.map((k) => k.deviceId),
        ['phone'],
      )
    })

    it('an erased account’s KeyPackages are gone', async () => {
      const zed = await Device.connect(t.mqttUrl, 'zed', 'phone', await t.token('zed'))
      devices.push(zed)
      await zed.request('mls.keypackages.upload', { keyPackages: await packagesOf(zed, 2) })
      await t.node.accounts.erase('zed', { by: 'test-operator' })
      assert.equal((await t.node.accounts.finished('zed'))?.status, 'erased')
      assert.deepEqual(await t.node.stores.keyPackages.count('zed', 'phone', Date.now()), {
        count: 0,
        lastResort: false,
      })
      assert.deepEqual(await t.node.stores.keyPackages.claim('zed', Date.now()), [])
    })

    describe('Commit ordering', () => {
      let chatId: string
      let dana: Device
      let danaTablet: Device
      let eve: Device
      const mls: Record<string, MlsMember> = {}

      before(async () => {
        dana = await Device.connect(t.mqttUrl, 'dana', 'phone', await t.token('dana'))
        danaTablet = await Device.connect(t.mqttUrl, 'dana', 'tablet', await t.token('dana'))
        eve = await Device.connect(t.mqttUrl, 'eve', 'phone', await t.token('eve'))
        devices.push(dana, danaTablet, eve)
        chatId = (
          await dana.request<{ id: string }>('chat.create', {
            name: 'Secret',
            members: ['eve'],
            encrypted: true,
          })
        ).id
        for (const d of [dana, danaTablet, eve]) mls[`${d.userId}/${d.deviceId}`] = await mlsDevice(d)
      })

      it('makes a chat encrypted at creation: no text in it, and no Commit in a plaintext chat', async () => {
        const chat = await dana.request<{ id: string; kind: string; encrypted: boolean }>('chat.get', {
          chatId,
        })
        assert.deepEqual([chat.id.slice(0, 2), chat.kind, chat.encrypted], ['e_', 'group', true])
        const err = await refused(
          dana.request('send', { chatId, clientMsgId: 'plain', text: 'hello' }),
          'not_allowed',
        )
        assert.match(err.message, /end-to-end encrypted: it takes MLS ciphertext, not text/)
        await dana.send(chatId, 'hello', 'plain-topic')
        await dana.until(() => dana.errors.some((e) => e.ref === 'plain-topic'), 'the refusal')
        assert.equal(dana.errors.find((e) => e.ref === 'plain-topic')?.code, 'not_allowed')
        const plain = await dana.request<{ id: string; encrypted: boolean }>('chat.create', {
          name: 'Open',
          members: [],
        })
        assert.equal(plain.encrypted, false)
        const creator: MlsMember = { identity: 'dana/phone', kp: await newKeyPackage('dana/phone') }
        await createChatGroup(plain.id, creator)
        const first = await commitAdd(creator, [])
        const refusal = await refused(
          dana.request('mls.commit', commitParams(plain.id, first)),
          'not_allowed',
        )
        assert.match(refusal.message, /is not encrypted/)
      })

      it('opens the group with the creator’s first Commit, stored with the next seq and delivered to every member device', async () => {
        const creator = mls['dana/phone'] as MlsMember
        await createChatGroup(chatId, creator)
        const claimed = await dana.request<Claim>('mls.keypackages.claim', { userId: 'eve' })
        assert.equal(claimed.keyPackages.length, 1)
        const add = await commitAdd(
          creator,
          claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
        )
        const accepted = await dana.request<{ seq: number; epoch: number }>(
          'mls.commit',
          commitParams(chatId, add),
        )
        assert.equal(accepted.epoch, 1)
        creator.state = add.newState
        await eve.until(() => commitsSeen(eve, chatId).length === 1, 'the Commit')
        await danaTablet.until(() => commitsSeen(danaTablet, chatId).length === 1, 'the Commit')
        assert.deepEqual(commitsSeen(eve, chatId), [
          {
            seq: accepted.seq,
            senderId: 'dana',
            type: 'mls_commit',
            epoch: 0,
            commit: base64(add.commit),
            added: ['eve/phone'],
          },
        ])
        // Eve's device sees itself added, fetches its Welcome and joins; no one else gets that Welcome.
        const eveMls = mls['eve/phone'] as MlsMember
        const w = await eve.request<{ welcome: string; epoch: number; seq: number }>('mls.welcome', {
          chatId,
          epoch: 0,
        })
        assert.deepEqual(w, { welcome: base64(add.welcome ?? new Uint8Array()), epoch: 1, seq: accepted.seq })
        await joinFromWelcome(eveMls, new Uint8Array(Buffer.from(w.welcome, 'base64')))
        assert.equal(epochOf(eveMls), 1)
        await refused(danaTablet.request('mls.welcome', { chatId, epoch: 0 }), 'not_found')
        await refused(carol.request('mls.welcome', { chatId, epoch: 0 }), 'chat_not_found')
        // A Commit for the epoch the chat left is refused with the current one.
        const err = await refused(dana.request('mls.commit', commitParams(chatId, add)), 'stale_epoch')
        assert.match(err.message, /epoch 0; the chat is at epoch 1/)
      })

      it('accepts exactly one of two Commits for one epoch sent at the same instant; the other client rebases and wins the next', async () => {
        const danaMls = mls['dana/phone'] as MlsMember
        const eveMls = mls['eve/phone'] as MlsMember
        const tabletKp = await dana.request<Claim>('mls.keypackages.claim', { userId: 'dana' })
        const tablet = tabletKp.keyPackages.find((k) => k.deviceId === 'tablet')
        assert.ok(tablet)
        // Dana adds her tablet, Eve updates her keys: both on epoch 1.
        const [byDana, byEve] = await Promise.all([
          commitAdd(danaMls, [new Uint8Array(Buffer.from(tablet.keyPackage, 'base64'))]),
          commitAdd(eveMls, []),
        ])
        const results = await Promise.allSettled([
          dana.request<{ seq: number; epoch: number }>('mls.commit', commitParams(chatId, byDana)),
          eve.request<{ seq: number; epoch: number }>('mls.commit', commitParams(chatId, byEve)),
        ])
        const won = results.filter((r) => r.status === 'fulfilled')
        const lost = results.filter((r) => r.status === 'rejected')
        assert.equal(won.length, 1, 'exactly one Commit of epoch 1 is accepted')
        assert.equal(lost.length, 1)
        const reason = lost[0]?.reason as Error & { code: string }
        assert.equal(reason.code, 'stale_epoch', reason.message)
        assert.equal(won[0]?.value.epoch, 2)
        const danaWon = results[0]?.status === 'fulfilled'
        const [winner, loser, winnerDevice, loserDevice] = danaWon
          ? [danaMls, eveMls, dana, eve]
          : [eveMls, danaMls, eve, dana]
        const winning = danaWon ? byDana : byEve
        winner.state = winning.newState
        // The loser drops its Commit, processes the winner's from its inbox, and commits again.
        await loserDevice.until(
          () => commitsSeen(loserDevice, chatId).some((c) => c.epoch === 1),
          'the winner',
        )
        const seen = commitsSeen(loserDevice, chatId).find((c) => c.epoch === 1)
        assert.ok(seen)
        assert.equal(seen.commit, base64(winning.commit))
        await receive(loser, new Uint8Array(Buffer.from(seen.commit, 'base64')))
        assert.equal(epochOf(loser), 2)
        const retry = danaWon
          ? await commitAdd(eveMls, [])
          : await commitAdd(danaMls, [new Uint8Array(Buffer.from(tablet.keyPackage, 'base64'))])
        const again = await loserDevice.request<{ seq: number; epoch: number }>(
          'mls.commit',
          commitParams(chatId, retry),
        )
        assert.equal(again.epoch, 3)
        loser.state = retry.newState
        await winnerDevice.until(
          () => commitsSeen(winnerDevice, chatId).some((c) => c.epoch === 2),
          'the retry',
        )
        await receive(winner, retry.commit)
        assert.equal(epochOf(winner), 3)
        assert.equal(epochOf(loser), 3)
        // Every member device got the Commits in one order, one per epoch, in seq order.
        await eve.until(() => commitsSeen(eve, chatId).length === 3, 'three Commits')
        const order = commitsSeen(eve, chatId)
        assert.deepEqual(
          order.map((c) => c.epoch),
          [0, 1, 2],
        )
        assert.ok(
          order[0] && order[1] && order[2] && order[0].seq < order[1].seq && order[1].seq < order[2].seq,
        )
      })

      it('refuses a Commit that is not from the caller’s leaf, not of this chat’s group, adds a non-member, or is no Commit', async () => {
        const danaMls = mls['dana/phone'] as MlsMember
        const epoch = epochOf(danaMls)
        const own = await commitAdd(danaMls, [])
        // The tablet sends the phone's Commit: its sender leaf is not the tablet.
        let err = await refused(danaTablet.request('mls.commit', commitParams(chatId, own)), 'invalid_commit')
        assert.match(err.message, /sender is leaf 0, which is not this device \(dana\/tablet\)/)
        const carolKp = await newKeyPackage('carol/phone')
        const addCarol = await commitAdd(danaMls, [carolKp.bytes])
        err = await refused(dana.request('mls.commit', commitParams(chatId, addCarol)), 'invalid_commit')
        assert.match(err.message, /carol\/phone, whose user is not a member/)
        const other = (
          await dana.request<{ id: string }>('chat.create', { name: 'Other', members: [], encrypted: true })
        ).id
        err = await refused(dana.request('mls.commit', commitParams(other, own)), 'invalid_commit')
        assert.match(err.message, /group is not this chat/)
        err = await refused(
          dana.request('mls.commit', { chatId, commit: base64((await newKeyPackage('dana/phone')).bytes) }),
          'invalid_commit',
        )
        assert.match(err.message, /PublicMessage/)
        await refused(dana.request('mls.commit', { chatId, commit: 'aGVsbG8=' }), 'invalid_commit')
        await refused(carol.request('mls.commit', commitParams(chatId, own)), 'chat_not_found')
        // An Add needs its Welcome, for the KeyPackages it adds and no others.
        const tabletAgain = await newKeyPackage('dana/laptop')
        const withoutWelcome = await commitAdd(danaMls, [tabletAgain.bytes])
        err = await refused(
          dana.request('mls.commit', { chatId, commit: base64(withoutWelcome.commit) }),
          'invalid_commit',
        )
        assert.match(err.message, /adds devices comes with their Welcome/)
        const otherAdd = await commitAdd(danaMls, [(await newKeyPackage('eve/phone2')).bytes])
        err = await refused(
          dana.request('mls.commit', {
            chatId,
            commit: base64(withoutWelcome.commit),
            welcome: base64(otherAdd.welcome ?? new Uint8Array()),
          }),
          'invalid_commit',
        )
        assert.match(err.message, /not for the KeyPackages the Commit adds/)
        err = await refused(
          dana.request('mls.commit', {
            chatId,
            commit: base64(own.commit),
            welcome: base64(otherAdd.welcome ?? new Uint8Array()),
          }),
          'invalid_commit',
        )
        assert.match(err.message, /a Welcome with a Commit that adds no one/)
        // Nothing of it was stored: the chat is where it was, and the valid Commit still goes in.
        const ok = await dana.request<{ epoch: number }>('mls.commit', commitParams(chatId, own))
        assert.equal(ok.epoch, epoch + 1)
        danaMls.state = own.newState
      })

      it('opens a chat’s group only from its creator, follows Removes by leaf index, and lets only admins remove others', async () => {
        const solo = (
          await eve.request<{ id: string }>('chat.create', {
            name: 'Eve’s',
            members: ['dana'],
            encrypted: true,
          })
        ).id
        const danaOwn: MlsMember = { identity: 'dana/phone', kp: await newKeyPackage('dana/phone') }
        await createChatGroup(solo, danaOwn)
        const first = await commitAdd(danaOwn, [])
        const err = await refused(dana.request('mls.commit', commitParams(solo, first)), 'not_allowed')
        assert.match(err.message, /opened by its creator/)
        // In the main chat, Dana removes Eve (leaf 1): Eve's device is no longer a sender there.
        const danaMls = mls['dana/phone'] as MlsMember
        const eveMls = mls['eve/phone'] as MlsMember
        await eve.until(() => commitsSeen(eve, chatId).length >= epochOf(danaMls), 'every Commit so far')
        for (const c of commitsSeen(eve, chatId).filter((c) => c.epoch >= epochOf(eveMls)))
          if (c.senderId !== 'eve') await receive(eveMls, new Uint8Array(Buffer.from(c.commit, 'base64')))
        assert.equal(epochOf(eveMls), epochOf(danaMls))
        const eveUpdate = await commitAdd(eveMls, [])
        const removeEve = await commitRemove(danaMls, [1])
        const removed = await dana.request<{ epoch: number }>('mls.commit', commitParams(chatId, removeEve))
        danaMls.state = removeEve.newState
        const late = await refused(eve.request('mls.commit', commitParams(chatId, eveUpdate)), 'stale_epoch')
        assert.equal(
          (late as Error & { epoch?: number }).epoch,
          removed.epoch,
          'the current epoch comes with it',
        )
        // Eve's new KeyPackage is added back: the DS puts her in the leftmost blank leaf (1),
        // as the members' clients do, so a Commit she sends from leaf 1 is hers.
        const again = await mlsDevice(eve)
        const claimed = await dana.request<Claim>('mls.keypackages.claim', { userId: 'eve' })
        const back = await commitAdd(
          danaMls,
          claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
        )
        await dana.request('mls.commit', commitParams(chatId, back))
        danaMls.state = back.newState
        const backAt = epochOf(danaMls) - 1
        const w = await eve.request<{ welcome: string }>('mls.welcome', { chatId, epoch: backAt })
        await joinFromWelcome(again, new Uint8Array(Buffer.from(w.welcome, 'base64')))
        const fromLeaf1 = await commitAdd(again, [])
        const accepted = await eve.request<{ epoch: number }>('mls.commit', commitParams(chatId, fromLeaf1))
        assert.equal(accepted.epoch, epochOf(danaMls) + 1)
        again.state = fromLeaf1.newState
        await receive(danaMls, fromLeaf1.commit)
        assert.equal(epochOf(danaMls), accepted.epoch)
        // Eve is no admin: she may not remove Dana's device while Dana is in the chat.
        const kick = await commitRemove(again, [0])
        const denied = await refused(eve.request('mls.commit', commitParams(chatId, kick)), 'not_allowed')
        assert.match(denied.message, /dana\/phone: only admins remove another member's devices/)
      })

      it('appends a Commit its node recorded but did not store in the chat (it died between) before the next one', async () => {
        const danaMls = mls['dana/phone'] as MlsMember
        const epoch = epochOf(danaMls)
        const lost = await commitAdd(danaMls, [])
        // What a node that died right after recording the Commit leaves behind.
        const latest = await t.node.stores.commits.latest(chatId)
        assert.equal(latest?.epoch, epoch - 1)
        assert.equal(
          await t.node.stores.commits.insert({
            chatId,
            epoch,
            senderId: 'dana',
            deviceId: 'phone',
            leaves: latest?.leaves ?? [],
            bytes: lost.commit,
            added: [],
            welcome: null,
            at: Date.now(),
            seq: null,
          }),
          true,
        )
        danaMls.state = lost.newState
        const next = await commitAdd(danaMls, [])
        const accepted = await dana.request<{ seq: number; epoch: number }>(
          'mls.commit',
          commitParams(chatId, next),
        )
        assert.equal(accepted.epoch, epoch + 2)
        danaMls.state = next.newState
        await danaTablet.until(
          () => commitsSeen(danaTablet, chatId).some((c) => c.epoch === epoch + 1),
          'both Commits',
        )
        const two = commitsSeen(danaTablet, chatId).filter((c) => c.epoch >= epoch)
        assert.deepEqual(
          two.map((c) => [c.epoch, c.commit]),
          [
            [epoch, base64(lost.commit)],
            [epoch + 1, base64(next.commit)],
          ],
        )
        assert.equal(two[1]?.seq, accepted.seq)
        assert.ok((two[0]?.seq ?? Infinity) < accepted.seq)
        assert.equal((await t.node.stores.commits.latest(chatId))?.seq, accepted.seq)
      })

      it('carries ciphertext in an encrypted chat, stored and delivered as is, counted unread, never readable by the server', async () => {
        const gus = await Device.connect(t.mqttUrl, 'gus', 'phone', await t.token('gus'))
        const hana = await Device.connect(t.mqttUrl, 'hana', 'phone', await t.token('hana'))
        devices.push(gus, hana)
        const secret = (
          await gus.request<{ id: string }>('chat.create', {
            name: 'Plans',
            members: ['hana'],
            encrypted: true,
          })
        ).id
        const g = await mlsDevice(gus)
        const h = await mlsDevice(hana)
        await createChatGroup(secret, g)
        const claimed = await gus.request<Claim>('mls.keypackages.claim', { userId: 'hana' })
        const add = await commitAdd(
          g,
          claimed.keyPackages.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
        )
        await gus.request('mls.commit', commitParams(secret, add))
        g.state = add.newState
        const w = await hana.request<{ welcome: string }>('mls.welcome', { chatId: secret, epoch: 0 })
        await joinFromWelcome(h, new Uint8Array(Buffer.from(w.welcome, 'base64')))
        const plaintext = 'the surprise party is at seven'
        const first = base64(await encrypt(g, plaintext))
        await gus.client.publishAsync(
          `c/${secret}/send`,
          JSON.stringify({ clientMsgId: 'c1', ciphertext: first }),
          {
            qos: 1,
          },
        )
        const viaOp = await gus.request<{ message: { seq: number; text: null; ciphertext: string } }>(
          'send',
          {
            chatId: secret,
            clientMsgId: 'c2',
            ciphertext: base64(await encrypt(g, 'bring a cake')),
          },
        )
        assert.equal(viaOp.message.text, null)
        const got = () => hana.messages(secret).filter((e) => e.kind === 'text')
        await hana.until(() => got().length === 2, 'two encrypted messages')
        const [one, two] = got() as (InboxEvent & { ciphertext: string })[]
        assert.equal(one?.text, null)
        assert.equal(one?.ciphertext, first)
        assert.equal(
          await decrypt(h, new Uint8Array(Buffer.from(one?.ciphertext ?? '', 'base64'))),
          plaintext,
        )
        assert.equal(
          await decrypt(h, new Uint8Array(Buffer.from(two?.ciphertext ?? '', 'base64'))),
          'bring a cake',
        )
        assert.equal((await hana.request<{ unread: number }>('chat.get', { chatId: secret })).unread, 2)
        // What the server holds is the ciphertext: history, and on SQLite the store's own bytes.
        const history = await hana.request<{ messages: { text: string | null; ciphertext?: string }[] }>(
          'history',
          {
            chatId: secret,
          },
        )
        assert.ok(history.messages.filter((m) => m.ciphertext).every((m) => m.text === null))
        if (backend === 'SQLite') {
          for (const f of readdirSync(t.dataDir).filter((n) => n.includes('.db')))
            assert.ok(!readFileSync(join(t.dataDir, f)).includes(plaintext), `${f} holds the plaintext`)
        }
        // Refused: no text, edit or search in it; no ciphertext elsewhere; bytes that are not an application message.
        await refused(
          gus.request('edit', { chatId: secret, seq: viaOp.message.seq, text: 'x' }),
          'not_allowed',
        )
        await refused(hana.request('search', { chatId: secret, query: 'cake' }), 'not_allowed')
        const plainChat = (await gus.request<{ id: string }>('chat.create', { name: 'Open', members: [] })).id
        await refused(
          gus.request('send', { chatId: plainChat, clientMsgId: 'c3', ciphertext: first }),
          'not_allowed',
        )
        let err = await refused(
          gus.request('send', { chatId: secret, clientMsgId: 'c4', ciphertext: base64(add.commit) }),
          'bad_request',
        )
        assert.match(err.message, /a mls_public_message; a message is an MLS PrivateMessage/)
        err = await refused(
          gus.request('send', { chatId: secret, clientMsgId: 'c5', ciphertext: 'aGVsbG8=' }),
          'bad_request',
        )
        assert.match(err.message, /ciphertext: not an MLS message/)
        err = await refused(
          gus.request('send', { chatId: secret, clientMsgId: 'c6', media: ['m_1'] }),
          'bad_request',
        )
        assert.match(err.message, /needs its ciphertext/)
      })

      it('keeps the group in step with the chat: a user removed from the chat must be removed from the group next', async () => {
        const ivan = await Device.connect(t.mqttUrl, 'ivan', 'phone', await t.token('ivan'))
        const jo = await Device.connect(t.mqttUrl, 'jo', 'phone', await t.token('jo'))
        const kit = await Device.connect(t.mqttUrl, 'kit', 'phone', await t.token('kit'))
        devices.push(ivan, jo, kit)
        const room = (
          await ivan.request<{ id: string }>('chat.create', {
            name: 'Room',
            members: ['jo', 'kit'],
            encrypted: true,
          })
        ).id
        const [i, j] = [await mlsDevice(ivan), await mlsDevice(jo)]
        await mlsDevice(kit)
        await createChatGroup(room, i)
        const claims = [
          ...(await ivan.request<Claim>('mls.keypackages.claim', { userId: 'jo' })).keyPackages,
          ...(await ivan.request<Claim>('mls.keypackages.claim', { userId: 'kit' })).keyPackages,
        ]
        const add = await commitAdd(
          i,
          claims.map((k) => new Uint8Array(Buffer.from(k.keyPackage, 'base64'))),
        )
        await ivan.request('mls.commit', commitParams(room, add))
        i.state = add.newState
        const w = await jo.request<{ welcome: string }>('mls.welcome', { chatId: room, epoch: 0 })
        await joinFromWelcome(j, new Uint8Array(Buffer.from(w.welcome, 'base64')))
        assert.deepEqual(await jo.request('mls.group', { chatId: room }), {
          epoch: 1,
          leaves: [
            { leaf: 0, userId: 'ivan', deviceId: 'phone' },
            { leaf: 1, userId: 'jo', deviceId: 'phone' },
            { leaf: 2, userId: 'kit', deviceId: 'phone' },
          ],
          departed: [],
          revoked: [],
        })
        await ivan.request('chat.remove', { chatId: room, userId: 'kit' })
        assert.deepEqual(
          (await jo.request<{ departed: number[] }>('mls.group', { chatId: room })).departed,
          [2],
        )
        const update = await commitAdd(i, [])
        const err = await refused(ivan.request('mls.commit', commitParams(room, update)), 'invalid_commit')
        assert.match(err.message, /no longer members in the group: remove kit\/phone \(leaf 2\)/)
        // Any member's device may catch the group up, an admin or not.
        const removeKit = await commitRemove(j, [2])
        assert.deepEqual(await jo.request('mls.commit', commitParams(room, removeKit)), { seq: 4, epoch: 2 })
        assert.deepEqual(await ivan.request('mls.group', { chatId: room }), {
          epoch: 2,
          leaves: [
            { leaf: 0, userId: 'ivan', deviceId: 'phone' },
            { leaf: 1, userId: 'jo', deviceId: 'phone' },
          ],
          departed: [],
          revoked: [],
        })
        await refused(kit.request('mls.group', { chatId: room }), 'chat_not_found')
      })
    })
  })
}
