import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { newKeyPackage } from './helpers/mls.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

async function refused(work: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  const err = (await work.then(
    () => assert.fail(`expected ${code}`),
    (e: unknown) => e,
  )) as Error & { code: string }
  assert.equal(err.code, code, err.message)
  return err
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
  })
}
