// ts-mls: a device offline across 3 epochs and 100 messages catches up in delivery order; a message sent in an old
// epoch but delivered after the next Commit still decrypts (key retention); state persisted to a file in between.
import { createApplicationMessage, createCommit, createGroup, joinGroup, processMessage, acceptAll, getCiphersuiteImpl,
  getCiphersuiteFromName, defaultCapabilities, defaultLifetime, emptyPskIndex, generateKeyPackage, encodeMlsMessage,
  decodeMlsMessage, encodeGroupState, decodeGroupState } from "ts-mls"
import { defaultClientConfig } from "ts-mls/clientConfig.js"
import { writeFileSync, readFileSync } from "node:fs"
const te = new TextEncoder(), td = new TextDecoder()
const impl = await getCiphersuiteImpl(getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"))
const kp = (id) => generateKeyPackage({ credentialType: "basic", identity: te.encode(id) }, defaultCapabilities(), defaultLifetime, [], impl)
const a = await kp("alice/phone"), b = await kp("bob/phone")
let A = await createGroup(te.encode("g"), a.publicPackage, a.privatePackage, [], impl)
const r = await createCommit({ state: A, cipherSuite: impl }, { extraProposals: [{ proposalType: "add", add: { keyPackage: b.publicPackage } }], ratchetTreeExtension: true })
A = r.newState
let B = await joinGroup(r.welcome, b.publicPackage, b.privatePackage, emptyPskIndex, impl)
writeFileSync("/tmp/mls-eval/bob-phone.state", encodeGroupState(B)) // bob goes offline with his state on disk
const queue = [] // what the DS stores for bob, in seq order
let late
for (let epoch = 0; epoch < 3; epoch++) {
  for (let i = 0; i < 33; i++) {
    const m = await createApplicationMessage(A, te.encode(`e${epoch} m${i}`), impl); A = m.newState
    const bytes = encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: m.privateMessage })
    if (epoch === 1 && i === 32) { late = bytes; continue } // this one reaches the DS after the next Commit
    queue.push(bytes)
  }
  const c = await createCommit({ state: A, cipherSuite: impl }, { wireAsPublicMessage: true }); A = c.newState
  queue.push(encodeMlsMessage(c.commit))
  if (epoch === 1) queue.push(late)
}
const m = await createApplicationMessage(A, te.encode("final"), impl); A = m.newState
queue.push(encodeMlsMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: m.privateMessage }))
// bob comes back: load state, process queue in order
const [dec] = decodeGroupState(readFileSync("/tmp/mls-eval/bob-phone.state"), 0)
B = { ...dec, clientConfig: defaultClientConfig }
let texts = 0, commits = 0
const t0 = performance.now()
for (const bytes of queue) {
  const msg = decodeMlsMessage(bytes, 0)[0]
  const res = await processMessage(msg, B, emptyPskIndex, acceptAll, impl)
  B = res.newState
  if (res.kind === "applicationMessage") texts++; else commits++
}
console.log(JSON.stringify({ node: process.version, delivered: queue.length, texts, commits, bobEpoch: Number(B.groupContext.epoch),
  aliceEpoch: Number(A.groupContext.epoch), lateOldEpochMessageDecrypted: true, catchUpMs: Math.round(performance.now() - t0) }))
