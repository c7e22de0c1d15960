// The spike's client flow with ts-mls. Runs unchanged in Node (20/24) and in Chromium (esbuild bundle).
import {
  createApplicationMessage, createCommit, createGroup, joinGroup, processMessage, acceptAll,
  getCiphersuiteImpl, getCiphersuiteFromName, defaultCapabilities, defaultLifetime, emptyPskIndex,
  generateKeyPackage, encodeMlsMessage, decodeMlsMessage, encodeGroupState, decodeGroupState,
  mlsExporter, zeroOutUint8Array,
} from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { DeliveryService, parseMls } from "./ds.mjs"

const te = new TextEncoder(), td = new TextDecoder()
const now = () => performance.now()
const SUITE = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"

export async function runFlow(log = console.log, persist = async (bytes) => bytes) {
  const fig = {}
  const check = (cond, msg) => { if (!cond) throw new Error("CHECK FAILED: " + msg); log("  ok: " + msg) }
  let t = now()
  const impl = await getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  fig.suiteInitMs = now() - t
  const ds = new DeliveryService()

  // Each device: credential identity = "userId/deviceId"
  const devices = {}
  async function newDevice(id) {
    const cred = { credentialType: "basic", identity: te.encode(id) }
    const t0 = now()
    const kp = await generateKeyPackage(cred, defaultCapabilities(), defaultLifetime, [], impl)
    fig.keyPackageGenMs = now() - t0
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_key_package", keyPackage: kp.publicPackage })
    fig.keyPackageBytes = bytes.length
    devices[id] = { id, kp, state: undefined }
    return bytes
  }
  const alicePhoneKp = await newDevice("alice/phone")
  ds.uploadKeyPackage("bob/phone", await newDevice("bob/phone"))
  ds.uploadKeyPackage("bob/laptop", await newDevice("bob/laptop"))
  void alicePhoneKp
  log(`KeyPackage: ${fig.keyPackageBytes} bytes, generated in ${fig.keyPackageGenMs.toFixed(1)} ms`)

  // 1. alice creates the group
  const groupId = te.encode("chat-42")
  const alice = devices["alice/phone"]
  t = now()
  alice.state = await createGroup(groupId, alice.kp.publicPackage, alice.kp.privatePackage, [], impl)
  fig.createGroupMs = now() - t
  ds.createGroup(groupId, "alice/phone")
  log(`createGroup: ${fig.createGroupMs.toFixed(1)} ms`)

  // 2. alice claims bob's KeyPackages from the DS and adds both devices in one Commit
  const claimed = ["bob/phone", "bob/laptop"].map((id) => {
    const m = parseMls(ds.claimKeyPackage(id))
    return { proposalType: "add", add: { keyPackage: m.keyPackage } }
  })
  t = now()
  const addRes = await createCommit(
    { state: alice.state, cipherSuite: impl },
    { extraProposals: claimed, wireAsPublicMessage: true, ratchetTreeExtension: true },
  )
  fig.commitAdd2Ms = now() - t
  const commitBytes = encodeMlsMessage(addRes.commit)
  const welcomeBytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: addRes.welcome })
  fig.commitAdd2Bytes = commitBytes.length
  fig.welcome2Bytes = welcomeBytes.length
  // DS decides before the committer applies its new state
  const s1 = ds.submitHandshake(commitBytes)
  log("DS parsed commit: " + JSON.stringify(s1, (k, v) => (typeof v === "bigint" ? Number(v) : v)))
  check(s1.added.map((a) => a.identity).join(",") === "bob/phone,bob/laptop", "DS sees added identities without secrets")
  alice.state = addRes.newState
  addRes.consumed.forEach(zeroOutUint8Array)
  log(`Commit(add 2): ${fig.commitAdd2Bytes} B in ${fig.commitAdd2Ms.toFixed(1)} ms; Welcome: ${fig.welcome2Bytes} B`)

  // 3. bob's devices join from the Welcome (ratchet tree carried in the GroupInfo extension)
  for (const id of ["bob/phone", "bob/laptop"]) {
    const d = devices[id]
    const w = parseMls(welcomeBytes)
    t = now()
    d.state = await joinGroup(w.welcome, d.kp.publicPackage, d.kp.privatePackage, emptyPskIndex, impl)
    fig.joinMs = now() - t
  }
  log(`joinGroup (Welcome): ${fig.joinMs.toFixed(1)} ms`)
  check(devices["bob/laptop"].state.groupContext.epoch === 1n, "bob/laptop at epoch 1")

  // 4. everyone sends, everyone else decrypts
  const encMs = [], decMs = []
  async function send(fromId, text) {
    const d = devices[fromId]
    const t0 = now()
    const r = await createApplicationMessage(d.state, te.encode(text), impl)
    encMs.push(now() - t0)
    d.state = r.newState
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: r.privateMessage })
    if (text.length === 100) fig.appOverheadBytes = bytes.length - 100
    return bytes
  }
  async function receive(toId, bytes) {
    const d = devices[toId]
    const m = parseMls(bytes)
    const t0 = now()
    const r = await processMessage(m, d.state, emptyPskIndex, acceptAll, impl)
    if (m.wireformat === "mls_private_message" && r.kind === "applicationMessage") decMs.push(now() - t0)
    d.state = r.newState
    return r.kind === "applicationMessage" ? td.decode(r.message) : r.kind
  }
  const members = () => Object.values(devices).filter((d) => d.state && !d.removed).map((d) => d.id)
  for (const from of ["alice/phone", "bob/phone", "bob/laptop"]) {
    const text = `hello from ${from}`
    const bytes = await send(from, text)
    const meta = ds.inspectApplication(bytes)
    for (const to of members()) if (to !== from) check((await receive(to, bytes)) === text, `${to} reads "${text}" (DS sees only ${JSON.stringify(meta, (k, v) => (typeof v === "bigint" ? Number(v) : v))})`)
  }
  // more messages for timing
  for (let i = 0; i < 50; i++) {
    const b = await send("alice/phone", "x".repeat(100))
    await receive("bob/phone", b)
  }
  fig.encryptMsMedian = median(encMs)
  fig.decryptMsMedian = median(decMs)
  log(`app message: overhead ${fig.appOverheadBytes} B (100-byte text, default padding), encrypt ${fig.encryptMsMedian.toFixed(2)} ms, decrypt ${fig.decryptMsMedian.toFixed(2)} ms (median)`)

  // 5. exporter agrees between members (e.g. for media keys or safety numbers)
  const ex = async (id) => hexOf(await mlsExporter(devices[id].state.keySchedule.exporterSecret, "natter test", te.encode("ctx"), 32, impl))
  check((await ex("alice/phone")) === (await ex("bob/laptop")), "MLS exporter equal for alice/phone and bob/laptop")

  // 6. state persistence: encode bob/phone's state, decode it, keep going
  t = now()
  const encoded = encodeGroupState(devices["bob/phone"].state)
  fig.stateBytes3Members = encoded.length
  const decoded = decodeGroupState(await persist(encoded), 0)
  devices["bob/phone"].state = { ...decoded[0], clientConfig: defaultClientConfig }
  fig.stateRoundTripMs = now() - t
  log(`group state: ${fig.stateBytes3Members} B serialized (3 members), round trip ${fig.stateRoundTripMs.toFixed(1)} ms`)

  // 7. concurrent commits in one epoch: DS accepts the first, refuses the second; loser "rebases"
  const bobPhone = devices["bob/phone"]
  const aliceUpd = await createCommit({ state: alice.state, cipherSuite: impl }, { wireAsPublicMessage: true })
  const bobUpd = await createCommit({ state: bobPhone.state, cipherSuite: impl }, { wireAsPublicMessage: true })
  const aliceUpdBytes = encodeMlsMessage(aliceUpd.commit)
  fig.commitEmptyPathBytes = aliceUpdBytes.length
  const s2 = ds.submitHandshake(aliceUpdBytes)
  alice.state = aliceUpd.newState
  let refused
  try { ds.submitHandshake(encodeMlsMessage(bobUpd.commit)) } catch (e) { refused = e.code }
  check(refused === "E2EE_STALE_EPOCH", `second commit for epoch ${s2.epoch} refused (${refused})`)
  // bob/phone drops its pending commit (states are immutable values: just keep the old one) and applies the winner
  for (const id of ["bob/phone", "bob/laptop"]) await receive(id, aliceUpdBytes)
  check(bobPhone.state.groupContext.epoch === 2n, "bob/phone rebased onto alice's commit, epoch 2")

  // 8. alice removes bob/laptop
  const laptopLeaf = devices["bob/laptop"].state.privatePath.leafIndex
  t = now()
  const rm = await createCommit(
    { state: alice.state, cipherSuite: impl },
    { extraProposals: [{ proposalType: "remove", remove: { removed: laptopLeaf } }], wireAsPublicMessage: true },
  )
  fig.commitRemoveMs = now() - t
  const rmBytes = encodeMlsMessage(rm.commit)
  fig.commitRemoveBytes = rmBytes.length
  const s3 = ds.submitHandshake(rmBytes)
  log("DS parsed commit: " + JSON.stringify(s3, (k, v) => (typeof v === "bigint" ? Number(v) : v)))
  check(s3.removed[0]?.identity === "bob/laptop", "DS maps removed leaf to bob/laptop")
  alice.state = rm.newState
  await receive("bob/phone", rmBytes)
  const laptopResult = await receive("bob/laptop", rmBytes)
  log(`  bob/laptop processed its own removal: ${laptopResult}, groupActiveState=${JSON.stringify(devices["bob/laptop"].state.groupActiveState)}`)
  devices["bob/laptop"].removed = true
  const after = await send("alice/phone", "after removal")
  check((await receive("bob/phone", after)) === "after removal", "bob/phone reads message after removal")
  let laptopErr
  try { await processMessage(parseMls(after), devices["bob/laptop"].state, emptyPskIndex, acceptAll, impl) } catch (e) { laptopErr = e.message }
  check(!!laptopErr, `removed bob/laptop cannot decrypt: ${laptopErr}`)
  return fig
}

function median(a) { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)] }
function hexOf(b) { return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("") }
