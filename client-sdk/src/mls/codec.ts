import {
  acceptAll,
  type CiphersuiteImpl,
  type ClientState,
  createApplicationMessage,
  createCommit,
  decodeGroupState,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeGroupState,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type KeyPackage,
  type MLSMessage,
  processMessage,
} from 'ts-mls'
import { defaultClientConfig } from 'ts-mls/clientConfig.js'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'

/**
 * The SDK's one door to ts-mls (docs/e2ee.md): cipher suite, KeyPackages, Commits, application
 * messages, group state bytes, leaves and safety numbers. A swap of MLS library touches this file.
 */

/** The one cipher suite of encrypted chats (RFC 9420 §17.1, suite 1); the server refuses others. */
export const CIPHER_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

let suite: Promise<CiphersuiteImpl> | undefined
export const cipherSuite = (): Promise<CiphersuiteImpl> => {
  suite ??= getCiphersuiteImpl(getCiphersuiteFromName(CIPHER_SUITE))
  return suite
}

const te = new TextEncoder()
const td = new TextDecoder()

export function toBase64(b: Uint8Array): string {
  let s = ''
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000))
  return btoa(s)
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s)
  const b = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i)
  return b
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')

/** Decodes MLSMessage bytes; throws when they are not one. */
export function decodeMessage(bytes: Uint8Array): MLSMessage {
  const m = decodeMlsMessage(bytes, 0)?.[0]
  if (!m) throw new Error('not an MLS message')
  return m
}

/** A fresh Ed25519 key pair for a device's credential. */
export async function newSignatureKeyPair(): Promise<{ publicKey: Uint8Array; signKey: Uint8Array }> {
  return (await cipherSuite()).signature.keygen()
}

/**
 * A new KeyPackage of device `identity` (`userId/deviceId`, basic credential) signed with the
 * device's key pair: the MLSMessage bytes to upload, its ref (hex) and its private keys.
 */
export async function newKeyPackage(
  identity: string,
  signature: { publicKey: Uint8Array; signKey: Uint8Array },
) {
  const cs = await cipherSuite()
  const kp = await generateKeyPackageWithKey(
    { credentialType: 'basic', identity: te.encode(identity) },
    defaultCapabilities(),
    defaultLifetime,
    [],
    signature,
    cs,
  )
  const message = encodeMlsMessage({
    version: 'mls10',
    wireformat: 'mls_key_package',
    keyPackage: kp.publicPackage,
  })
  return {
    ref: hex(await makeKeyPackageRef(kp.publicPackage, cs.hash)),
    message,
    publicPackage: kp.publicPackage,
    privatePackage: kp.privatePackage,
  }
}

/** The KeyPackage inside MLSMessage bytes (as mls.keypackages.claim hands them out). */
export function keyPackageOf(bytes: Uint8Array): KeyPackage {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_key_package') throw new Error(`a ${m.wireformat}, not a KeyPackage`)
  return m.keyPackage
}

/** The identity a KeyPackage's credential names (`userId/deviceId`), or null when not basic. */
export function identityOfKeyPackage(kp: KeyPackage): string | null {
  const c = kp.leafNode.credential
  return c.credentialType === 'basic' ? td.decode(c.identity) : null
}

/** Group state bytes (they hold secrets: stored on the device only). */
export const stateBytes = (state: ClientState): Uint8Array => encodeGroupState(state)

/** A group state from its bytes, with ts-mls' default config (not serialized) attached again. */
export function stateFrom(bytes: Uint8Array): ClientState {
  const s = decodeGroupState(bytes, 0)?.[0]
  if (!s) throw new Error('not a group state')
  return { ...s, clientConfig: defaultClientConfig }
}

/** The epoch of a group state. */
export const epochOf = (state: ClientState): number => Number(state.groupContext.epoch)

/** A member leaf of a group: its index, device identity and credential signature key. */
export interface Leaf {
  leaf: number
  identity: string
  signaturePublicKey: Uint8Array
}

/** The group's member leaves, by leaf index (blank leaves left out). */
export function leavesOf(state: ClientState): Leaf[] {
  const out: Leaf[] = []
  // Leaves are the even nodes of the array-represented tree (RFC 9420 Appendix C).
  for (let i = 0; i < state.ratchetTree.length; i += 2) {
    const n = state.ratchetTree[i]
    if (n?.nodeType !== 'leaf') continue
    const c = n.leaf.credential
    if (c.credentialType !== 'basic') continue
    out.push({ leaf: i / 2, identity: td.decode(c.identity), signaturePublicKey: n.leaf.signaturePublicKey })
  }
  return out
}

/** This device's own leaf index in the group. */
export const ownLeafOf = (state: ClientState): number => Number(state.privatePath.leafIndex)

/**
 * A Commit as a PublicMessage (the Delivery Service reads its proposals; docs/e2ee.md §1) adding
 * the KeyPackages and removing the leaves given (neither: an empty Commit with an UpdatePath, a
 * key update), with the Welcome when it adds. `state` is not changed: `newState` is applied once
 * the server accepted the Commit.
 */
export async function makeCommit(
  state: ClientState,
  change: { add?: KeyPackage[]; remove?: number[] },
): Promise<{ commit: Uint8Array; welcome: Uint8Array | undefined; newState: ClientState }> {
  const extraProposals = [
    ...(change.remove ?? []).map((removed) => ({ proposalType: 'remove' as const, remove: { removed } })),
    ...(change.add ?? []).map((keyPackage) => ({ proposalType: 'add' as const, add: { keyPackage } })),
  ]
  const r = await createCommit(
    { state, cipherSuite: await cipherSuite() },
    { extraProposals, wireAsPublicMessage: true, ratchetTreeExtension: true },
  )
  return {
    commit: encodeMlsMessage(r.commit),
    welcome: r.welcome
      ? encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: r.welcome })
      : undefined,
    newState: r.newState,
  }
}

/** The epoch a Commit (PublicMessage bytes) was made in. */
export function commitEpoch(bytes: Uint8Array): number {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_public_message') throw new Error(`a ${m.wireformat}, not a PublicMessage Commit`)
  return Number(m.publicMessage.content.epoch)
}

/** The epoch and sender leaf of an application message (PrivateMessage bytes). */
export function privateMessageEpoch(bytes: Uint8Array): number {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_private_message') throw new Error(`a ${m.wireformat}, not a PrivateMessage`)
  return Number(m.privateMessage.epoch)
}

/** Applies another member's Commit (PublicMessage bytes): the state of the next epoch. */
export async function applyCommit(state: ClientState, bytes: Uint8Array): Promise<ClientState> {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_public_message') throw new Error(`a ${m.wireformat}, not a PublicMessage Commit`)
  const r = await processMessage(m, state, emptyPskIndex, acceptAll, await cipherSuite())
  if (r.kind !== 'newState') throw new Error('not a Commit')
  return r.newState
}

/** Encrypts an application message: PrivateMessage bytes and the state after (its ratchet moved). */
export async function encrypt(
  state: ClientState,
  plaintext: Uint8Array,
): Promise<{ bytes: Uint8Array; newState: ClientState }> {
  const r = await createApplicationMessage(state, plaintext, await cipherSuite())
  return {
    bytes: encodeMlsMessage({
      version: 'mls10',
      wireformat: 'mls_private_message',
      privateMessage: r.privateMessage,
    }),
    newState: r.newState,
  }
}

/** Decrypts another member's application message (PrivateMessage bytes). */
export async function decrypt(
  state: ClientState,
  bytes: Uint8Array,
): Promise<{ plaintext: Uint8Array; newState: ClientState }> {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_private_message') throw new Error(`a ${m.wireformat}, not a PrivateMessage`)
  const r = await processMessage(m, state, emptyPskIndex, acceptAll, await cipherSuite())
  if (r.kind !== 'applicationMessage') throw new Error('not an application message')
  return { plaintext: r.message, newState: r.newState }
}

/** The KeyPackageRefs (hex) a Welcome has group secrets for. */
export function welcomeRefs(bytes: Uint8Array): string[] {
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_welcome') throw new Error(`a ${m.wireformat}, not a Welcome`)
  return m.welcome.secrets.map((s) => hex(s.newMember))
}

/**
 * A safety number: 60 decimal digits in 12 groups of 5, from SHA-256 over a label and, sorted,
 * each device's `identity 0x00 signaturePublicKey 0x00` (the credential and key its leaves sign
 * with). The same devices give the same number on every member's client; a device added,
 * removed or re-keyed changes it. Compared out of band (docs/e2ee.md §9).
 */
export async function safetyNumber(
  devices: { identity: string; signaturePublicKey: Uint8Array }[],
): Promise<string> {
  const parts = devices
    .map((d) => [...te.encode(d.identity), 0, ...d.signaturePublicKey, 0])
    .sort((a, b) => compareBytes(a, b))
  const input = new Uint8Array([...te.encode('natter-safety-number-v1\u0000'), ...parts.flat()])
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', input))
  const groups: string[] = []
  // 12 groups of 5 digits, each from 2.5 bytes' worth: 5 bytes → two groups (40 bits mod 10^10).
  for (let i = 0; i < 30; i += 5) {
    let n = 0n
    for (const b of digest.subarray(i, i + 5)) n = (n << 8n) | BigInt(b)
    const ten = (n % 10_000_000_000n).toString().padStart(10, '0')
    groups.push(ten.slice(0, 5), ten.slice(5))
  }
  return groups.join(' ')
}

function compareBytes(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0)
  return a.length - b.length
}

export { td as utf8Decoder, te as utf8Encoder }
