import {
  type CiphersuiteImpl,
  decodeMlsMessage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type KeyPackage,
  type MLSMessage,
} from 'ts-mls'
import { makeKeyPackageRef, verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'

/**
 * Everything the server reads of MLS (RFC 9420) bytes, without any group secret: KeyPackages
 * (checked before the directory stores them) and PublicMessage Commits (read for their epoch,
 * sender and proposals). The one module that imports ts-mls on the server
 * (docs/decisions.md, "MLS library").
 */

/** The one cipher suite encrypted chats use (RFC 9420 §17.1, suite 1; docs/e2ee.md). */
export const CIPHER_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/** The largest KeyPackage accepted, in bytes (a suite-1 one is about 330). */
export const MAX_KEY_PACKAGE_BYTES = 16 * 1024

/** Why bytes are not an acceptable MLS message; the message says what is wrong. */
export class MlsProblem extends Error {
  override name = 'MlsProblem'
}

let suite: Promise<CiphersuiteImpl> | undefined
const cipherSuite = () => {
  suite ??= getCiphersuiteImpl(getCiphersuiteFromName(CIPHER_SUITE))
  return suite
}

/** The credential identity a device's leaves carry: its MQTT client id, `userId/deviceId`. */
export const leafIdentity = (userId: string, deviceId: string) => `${userId}/${deviceId}`

/**
 * Decodes one whole MLSMessage (RFC 9420 §6); trailing bytes or a decoding failure are an
 * MlsProblem.
 */
export function decodeMessage(bytes: Uint8Array): MLSMessage {
  let decoded: ReturnType<typeof decodeMlsMessage>
  try {
    decoded = decodeMlsMessage(bytes, 0)
  } catch {
    decoded = undefined
  }
  if (!decoded) throw new MlsProblem('not an MLS message')
  const [message, end] = decoded
  if (end !== bytes.length) throw new MlsProblem(`${bytes.length - end} bytes after the MLS message`)
  return message
}

const credentialIdentity = (c: KeyPackage['leafNode']['credential']): string | null =>
  c.credentialType === 'basic' ? new TextDecoder('utf-8', { fatal: false }).decode(c.identity) : null

const identityOf = (kp: KeyPackage): string | null => credentialIdentity(kp.leafNode.credential)

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i])

// ms since the epoch, from a lifetime bound in seconds (RFC 9420 §7.2); "forever" (2^64 - 1,
// ts-mls' 2^63 - 1) is clamped to the latest time a Date holds.
const MAX_DATE_MS = 8.64e15
const toMs = (seconds: bigint) =>
  seconds >= BigInt(MAX_DATE_MS / 1000) ? MAX_DATE_MS : Number(seconds) * 1000

/** A KeyPackage that passed checkKeyPackage. */
export interface CheckedKeyPackage {
  /** The KeyPackageRef (RFC 9420 §5.2), hex: what a Welcome names the package by. */
  ref: string
  /** The end of its lifetime, ms since the epoch. */
  notAfter: number
}

/**
 * Checks that bytes are a KeyPackage the directory may hand out for device `identity`
 * (`userId/deviceId`): an `mls_key_package` MLSMessage of version mls10 and CIPHER_SUITE, a
 * basic credential whose identity is the device, a valid KeyPackage signature and leaf node
 * signature, an init key other than the leaf's encryption key (RFC 9420 §10.1), a lifetime
 * that covers `now` (ms), at most MAX_KEY_PACKAGE_BYTES.
 *
 * @throws MlsProblem saying which check failed
 */
export async function checkKeyPackage(
  bytes: Uint8Array,
  identity: string,
  now: number,
): Promise<CheckedKeyPackage> {
  if (bytes.length > MAX_KEY_PACKAGE_BYTES)
    throw new MlsProblem(`${bytes.length} bytes, over ${MAX_KEY_PACKAGE_BYTES}`)
  const m = decodeMessage(bytes)
  if (m.wireformat !== 'mls_key_package') throw new MlsProblem(`a ${m.wireformat}, not a KeyPackage`)
  const kp = m.keyPackage
  if (m.version !== 'mls10' || kp.version !== 'mls10') throw new MlsProblem('not MLS 1.0')
  if (kp.cipherSuite !== CIPHER_SUITE)
    throw new MlsProblem(`cipher suite ${String(kp.cipherSuite)}; only ${CIPHER_SUITE} is accepted`)
  if (kp.leafNode.leafNodeSource !== 'key_package')
    throw new MlsProblem('its leaf node is not a key_package one')
  const who = identityOf(kp)
  if (who === null)
    throw new MlsProblem(`a ${kp.leafNode.credential.credentialType} credential; only basic is accepted`)
  if (who !== identity)
    throw new MlsProblem(`its credential is ${JSON.stringify(who)}, not this device (${identity})`)
  const { notBefore, notAfter } = kp.leafNode.lifetime
  if (toMs(notBefore) > now || toMs(notAfter) <= now) throw new MlsProblem('its lifetime does not cover now')
  if (sameBytes(kp.initKey, kp.leafNode.hpkePublicKey))
    throw new MlsProblem('its init key is its encryption key (RFC 9420 §10.1)')
  const cs = await cipherSuite()
  if (!(await verifyLeafNodeSignatureKeyPackage(kp.leafNode, cs.signature)))
    throw new MlsProblem('its leaf node signature is not valid')
  if (!(await verifyKeyPackage(kp, cs.signature))) throw new MlsProblem('its signature is not valid')
  return { ref: Buffer.from(await makeKeyPackageRef(kp, cs.hash)).toString('hex'), notAfter: toMs(notAfter) }
}

/** A proposal of a Commit as the Delivery Service reads it. */
export type CommitProposal =
  /** A new member: the identity of its KeyPackage's basic credential (null for another kind), and its suite. */
  | { type: 'add'; identity: string | null; cipherSuite: string; keyPackage: KeyPackage }
  /** A member removed, by leaf index only (RFC 9420 §12.1.3). */
  | { type: 'remove'; leaf: number }
  /** Any other proposal type, by name (update, psk, reinit, external_init, group_context_extensions) or number. */
  | { type: 'other'; proposalType: string }

/** What the Delivery Service reads of a PublicMessage Commit, without any group secret. */
export interface ReadCommit {
  /** The group id, which for a chat's group is the chat id in UTF-8. */
  groupId: Uint8Array
  /** The epoch the Commit was made in (it starts epoch + 1). */
  epoch: number
  /** The sender's leaf index; null for a sender that is not a member (an external commit). */
  senderLeaf: number | null
  proposals: CommitProposal[]
  /** Whether it carries an UpdatePath (new keys for the sender's path). */
  hasPath: boolean
  /**
   * The identity of the UpdatePath's new leaf node for the sender (RFC 9420 §12.4.1), which
   * replaces its leaf, credential included: undefined without a path, null for a credential
   * that is not basic.
   */
  pathIdentity?: string | null
}

/**
 * Reads a PublicMessage Commit (RFC 9420 §6.2, §12.4): the group, epoch, sender and proposals.
 *
 * @throws MlsProblem when the bytes are not an MLS 1.0 PublicMessage with a Commit, or when the
 *   Commit names a proposal by reference (its content would be hidden from the Delivery Service)
 */
export function readCommit(bytes: Uint8Array): ReadCommit {
  const m = decodeMessage(bytes)
  if (m.version !== 'mls10') throw new MlsProblem('not MLS 1.0')
  if (m.wireformat !== 'mls_public_message')
    throw new MlsProblem(`a ${m.wireformat}; a Commit must be a PublicMessage (mls_public_message)`)
  const c = m.publicMessage.content
  if (c.contentType !== 'commit') throw new MlsProblem(`a ${c.contentType} message, not a Commit`)
  if (c.epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw new MlsProblem('its epoch is out of range')
  const proposals = c.commit.proposals.map((p): CommitProposal => {
    if (p.proposalOrRefType !== 'proposal')
      throw new MlsProblem('a proposal by reference: a Commit must carry its proposals by value')
    const proposal = p.proposal
    if (proposal.proposalType === 'add') {
      const kp = proposal.add.keyPackage
      return { type: 'add', identity: identityOf(kp), cipherSuite: String(kp.cipherSuite), keyPackage: kp }
    }
    if (proposal.proposalType === 'remove') return { type: 'remove', leaf: proposal.remove.removed }
    return { type: 'other', proposalType: String(proposal.proposalType) }
  })
  const path = c.commit.path
  return {
    groupId: c.groupId,
    epoch: Number(c.epoch),
    senderLeaf: c.sender.senderType === 'member' ? c.sender.leafIndex : null,
    proposals,
    hasPath: path !== undefined,
    ...(path ? { pathIdentity: credentialIdentity(path.leafNode.credential) } : {}),
  }
}

/** The KeyPackageRef (RFC 9420 §5.2) of a KeyPackage, hex. */
export async function keyPackageRef(kp: KeyPackage): Promise<string> {
  return Buffer.from(await makeKeyPackageRef(kp, (await cipherSuite()).hash)).toString('hex')
}

/**
 * Checks that bytes are the Welcome of a Commit whose Adds have these KeyPackageRefs: an MLS 1.0
 * `mls_welcome` of CIPHER_SUITE with one EncryptedGroupSecrets per added KeyPackage, each naming
 * one of them (RFC 9420 §12.4.3.1). Its content is encrypted to the new members; nothing more
 * can be checked without their keys.
 *
 * @throws MlsProblem saying what does not match
 */
export function checkWelcome(bytes: Uint8Array, addedRefs: string[]): void {
  const m = decodeMessage(bytes)
  if (m.version !== 'mls10') throw new MlsProblem('the Welcome is not MLS 1.0')
  if (m.wireformat !== 'mls_welcome') throw new MlsProblem(`a ${m.wireformat} where a Welcome was expected`)
  if (m.welcome.cipherSuite !== CIPHER_SUITE)
    throw new MlsProblem(`a Welcome of cipher suite ${m.welcome.cipherSuite}`)
  const named = m.welcome.secrets.map((s) => Buffer.from(s.newMember).toString('hex')).sort()
  const expected = [...addedRefs].sort()
  if (named.length !== expected.length || named.some((r, i) => r !== expected[i]))
    throw new MlsProblem('the Welcome is not for the KeyPackages the Commit adds')
}

/**
 * Checks that bytes are an application message of a chat's group: an MLS 1.0 PrivateMessage
 * (RFC 9420 §6.3) with content type application and the chat id as group id. Its content is
 * encrypted; its epoch and length are all the server learns.
 *
 * @returns the epoch it was sent in
 * @throws MlsProblem saying what does not match
 */
export function checkApplicationMessage(bytes: Uint8Array, chatId: string): { epoch: number } {
  const m = decodeMessage(bytes)
  if (m.version !== 'mls10') throw new MlsProblem('not MLS 1.0')
  if (m.wireformat !== 'mls_private_message')
    throw new MlsProblem(
      `a ${m.wireformat}; a message is an MLS PrivateMessage (handshakes go to mls.commit)`,
    )
  const p = m.privateMessage
  if (p.contentType !== 'application')
    throw new MlsProblem(`a ${p.contentType} PrivateMessage, not an application one`)
  if (Buffer.compare(Buffer.from(p.groupId), Buffer.from(chatId, 'utf8')) !== 0)
    throw new MlsProblem("its group is not this chat's")
  return { epoch: Number(p.epoch) }
}
