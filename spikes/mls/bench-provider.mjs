// Encrypt/decrypt cost per app message in Node with the default (WebCrypto) vs noble provider; plus add-1-to-100 commit.
import { createApplicationMessage, createCommit, createGroup, joinGroup, processMessage, acceptAll, getCiphersuiteImpl,
  getCiphersuiteFromName, defaultCapabilities, defaultLifetime, emptyPskIndex, generateKeyPackage, encodeMlsMessage,
  nobleCryptoProvider, defaultCryptoProvider } from "ts-mls"
const te = new TextEncoder()
const SUITE = getCiphersuiteFromName("MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519")
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1]
const N = Number(process.env.GROUP ?? 100)
for (const [name, prov] of [["webcrypto(default)", defaultCryptoProvider], ["noble", nobleCryptoProvider]]) {
  const impl = await getCiphersuiteImpl(SUITE, prov)
  const kp = (id) => generateKeyPackage({ credentialType: "basic", identity: te.encode(id) }, defaultCapabilities(), defaultLifetime, [], impl)
  const a = await kp("a"), b = await kp("b")
  let A = await createGroup(te.encode("g"), a.publicPackage, a.privatePackage, [], impl)
  const r = await createCommit({ state: A, cipherSuite: impl }, { extraProposals: [{ proposalType: "add", add: { keyPackage: b.publicPackage } }] })
  A = r.newState
  let B = await joinGroup(r.welcome, b.publicPackage, b.privatePackage, emptyPskIndex, impl, A.ratchetTree)
  const enc = [], dec = []
  for (let i = 0; i < 200; i++) {
    let t = performance.now()
    const m = await createApplicationMessage(A, te.encode("x".repeat(100)), impl); enc.push(performance.now() - t); A = m.newState
    t = performance.now()
    const p = await processMessage({ version: "mls10", wireformat: "mls_private_message", privateMessage: m.privateMessage }, B, emptyPskIndex, acceptAll, impl)
    dec.push(performance.now() - t); B = p.newState
  }
  // group of N: add N-1 members in one commit, then measure adding one more
  const kps = []
  for (let i = 0; i < N - 1; i++) kps.push((await kp("m" + i)).publicPackage)
  const big0 = await kp("creator")
  let G = await createGroup(te.encode("big"), big0.publicPackage, big0.privatePackage, [], impl)
  let t = performance.now()
  G = (await createCommit({ state: G, cipherSuite: impl }, { extraProposals: kps.map((k) => ({ proposalType: "add", add: { keyPackage: k } })) })).newState
  const bulkMs = performance.now() - t
  const extra = (await kp("late")).publicPackage
  t = performance.now()
  const add1 = await createCommit({ state: G, cipherSuite: impl }, { extraProposals: [{ proposalType: "add", add: { keyPackage: extra } }], wireAsPublicMessage: true, ratchetTreeExtension: true })
  const add1Ms = performance.now() - t
  // first commit after bulk add has a blank tree -> also measure an update-path commit (full path) in the N+1 group
  G = add1.newState
  t = performance.now()
  const upd = await createCommit({ state: G, cipherSuite: impl }, { wireAsPublicMessage: true })
  const updMs = performance.now() - t
  console.log(JSON.stringify({ node: process.version, provider: name, encMedianMs: +med(enc).toFixed(3), decMedianMs: +med(dec).toFixed(3),
    groupN: N, bulkAddMs: Math.round(bulkMs), add1ToGroupMs: +add1Ms.toFixed(1), add1CommitBytes: encodeMlsMessage(add1.commit).length,
    add1WelcomeBytesWithTree: encodeMlsMessage({ version: "mls10", wireformat: "mls_welcome", welcome: add1.welcome }).length,
    emptyCommitWithPathMs: +updMs.toFixed(1), emptyCommitWithPathBytes: encodeMlsMessage(upd.commit).length }))
}
