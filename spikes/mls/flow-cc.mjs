// The same flow with @wireapp/core-crypto 10.3.0. `cc` is the module (native in Node, browser build in Chromium).
// The "server" side reuses ds.mjs (ts-mls's pure decoder) on core-crypto's wire bytes: that is also an interop check.
import { DeliveryService, parseMls, identityOf } from "./ds.mjs"

const te = new TextEncoder(), td = new TextDecoder()
const now = () => performance.now()

export async function runFlowCC(cc, log = console.log, newDatabase = () => cc.Database.inMemory()) {
  const fig = {}
  const check = (cond, msg) => { if (!cond) throw new Error("CHECK FAILED: " + msg); log("  ok: " + msg) }
  const suite = cc.CipherSuite.Mls128Dhkemx25519Aes128gcmSha256Ed25519
  const ds = new DeliveryService()
  let lastBundle
  const transport = {
    async sendCommitBundle(bundle) { lastBundle = bundle },
    async prepareForTransport(historySecret) { return new Uint8Array() },
  }
  const devices = {}
  async function newDevice(id, userUuid, deviceNum) {
    const t0 = now()
    const db = await newDatabase(id)
    const c = cc.CoreCrypto.new(db)
    const clientId = new cc.ClientId(new cc.Uuid(userUuid), new cc.DeviceId(BigInt(deviceNum)), "natter.local")
    let credRef
    await c.transaction(async (ctx) => {
      await ctx.mlsInit(clientId, transport)
      credRef = await ctx.addCredential(cc.Credential.basic(suite, clientId))
    })
    fig.initClientMs = now() - t0
    devices[id] = { id, c, clientId, credRef }
    const t1 = now()
    const kp = await c.transaction((ctx) => ctx.generateKeyPackage(credRef))
    fig.keyPackageGenMs = now() - t1
    const bytes = kp.serialize()
    fig.keyPackageBytes = bytes.length
    log(`${id}: clientId bytes as text = ${JSON.stringify(td.decode(clientId.copyBytes()))}`)
    return bytes
  }
  const ALICE = "0b8f5c0e-1a1e-4f6b-9c1e-000000000a11", BOB = "0b8f5c0e-1a1e-4f6b-9c1e-000000000b0b"
  await newDevice("alice/phone", ALICE, 1)
  const kpB1 = await newDevice("bob/phone", BOB, 1)
  const kpB2 = await newDevice("bob/laptop", BOB, 2)
  // The DS's KeyPackage directory: core-crypto serializes a bare KeyPackage (not an MLSMessage), so wrap for the ts-mls parser
  const wrapKp = (b) => { const w = new Uint8Array(4 + b.length); w.set([0, 1, 0, 5]); w.set(b, 4); return w }
  for (const [id, b] of [["bob/phone", kpB1], ["bob/laptop", kpB2]]) {
    const m = parseMls(wrapKp(b))
    log(`  DS parses core-crypto KeyPackage of ${id}: suite=${m.keyPackage.cipherSuite}, identity=${JSON.stringify(identityOf(m.keyPackage.leafNode.credential))}`)
  }
  log(`KeyPackage: ${fig.keyPackageBytes} bytes, generated in ${fig.keyPackageGenMs.toFixed(1)} ms; client init ${fig.initClientMs.toFixed(1)} ms`)

  const alice = devices["alice/phone"]
  const convId = new cc.ConversationId(te.encode("chat-42"))
  let t = now()
  await alice.c.transaction((ctx) => ctx.createConversation(convId, alice.credRef))
  fig.createGroupMs = now() - t
  ds.createGroup(te.encode("chat-42"), "alice/phone")

  t = now()
  await alice.c.transaction((ctx) => ctx.addClientsToConversation(convId, [new cc.KeyPackage(kpB1), new cc.KeyPackage(kpB2)]))
  fig.commitAdd2Ms = now() - t
  const add = lastBundle
  fig.commitAdd2Bytes = add.commit.length
  const welcomeBytes = add.welcome.serialize()
  fig.welcome2Bytes = welcomeBytes.length
  fig.groupInfoBytes = add.groupInfo.payload.length
  const pm = parseMls(add.commit)
  log(`commit wireformat: ${pm.wireformat}`)
  if (pm.wireformat === "mls_public_message") {
    const s1 = ds.submitHandshake(add.commit)
    log("DS parsed commit: " + JSON.stringify(s1, (k, v) => (typeof v === "bigint" ? Number(v) : v)))
  }
  log(`Commit(add 2): ${fig.commitAdd2Bytes} B in ${fig.commitAdd2Ms.toFixed(1)} ms; Welcome: ${fig.welcome2Bytes} B; GroupInfo: ${fig.groupInfoBytes} B`)

  for (const id of ["bob/phone", "bob/laptop"]) {
    t = now()
    await devices[id].c.transaction((ctx) => ctx.processWelcomeMessage(new cc.Welcome(welcomeBytes)))
    fig.joinMs = now() - t
  }
  const ep = await devices["bob/laptop"].c.transaction((ctx) => ctx.conversationEpoch(convId))
  check(ep === 1n, `bob/laptop joined at epoch ${ep}`)

  const encMs = [], decMs = []
  const send = async (from, text) => {
    const t0 = now()
    const b = await devices[from].c.transaction((ctx) => ctx.encryptMessage(convId, te.encode(text)))
    encMs.push(now() - t0)
    if (text.length === 100) fig.appOverheadBytes = b.length - 100
    return b
  }
  const recv = async (to, b) => {
    const t0 = now()
    const r = await devices[to].c.transaction((ctx) => ctx.decryptMessage(convId, b))
    decMs.push(now() - t0)
    return r.inner.plaintext ? td.decode(r.inner.plaintext) : r.tag
  }
  const members = ["alice/phone", "bob/phone", "bob/laptop"]
  for (const from of members) {
    const text = `hello from ${from}`
    const b = await send(from, text)
    const meta = ds.inspectApplication(b)
    for (const to of members) if (to !== from) check((await recv(to, b)) === text, `${to} reads "${text}" (DS sees ${JSON.stringify(meta, (k, v) => (typeof v === "bigint" ? Number(v) : v))})`)
  }
  for (let i = 0; i < 50; i++) await recv("bob/phone", await send("alice/phone", "x".repeat(100)))
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
  fig.encryptMsMedian = med(encMs); fig.decryptMsMedian = med(decMs)
  log(`app message overhead ${fig.appOverheadBytes} B; encrypt ${fig.encryptMsMedian.toFixed(2)} ms, decrypt ${fig.decryptMsMedian.toFixed(2)} ms (median)`)

  // remove bob/laptop
  t = now()
  await alice.c.transaction((ctx) => ctx.removeClientsFromConversation(convId, [devices["bob/laptop"].clientId]))
  fig.commitRemoveMs = now() - t
  fig.commitRemoveBytes = lastBundle.commit.length
  const rmBytes = lastBundle.commit
  if (parseMls(rmBytes).wireformat === "mls_public_message") {
    const s3 = ds.submitHandshake(rmBytes)
    log("DS parsed commit: " + JSON.stringify(s3, (k, v) => (typeof v === "bigint" ? Number(v) : v)))
  }
  await recv("bob/phone", rmBytes)
  const laptopRes = await devices["bob/laptop"].c.transaction((ctx) => ctx.decryptMessage(convId, rmBytes))
  log(`  bob/laptop on its removal: tag=${laptopRes.tag} isActive=${laptopRes.inner.isActive}`)
  const after = await send("alice/phone", "after removal")
  check((await recv("bob/phone", after)) === "after removal", "bob/phone reads after removal")
  let err
  try { await recv("bob/laptop", after) } catch (e) { err = e.message || String(e) }
  check(!!err, `removed bob/laptop cannot decrypt (${String(err).slice(0, 80)})`)
  return fig
}
