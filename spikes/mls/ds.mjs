// A toy "Delivery Service" for the spike: it parses MLS messages WITHOUT any group secret.
// Only decodeMlsMessage (a pure TLS-syntax decoder) is used: no keys, no group state.
//
// What a Natter DS can learn from a PublicMessage Commit:
//   group id, epoch, sender (leaf index), the proposals by value (Add carries the whole
//   KeyPackage, so the added credential/identity is readable; Remove carries only a LEAF INDEX),
//   whether there is an UpdatePath. To map a removed leaf index to an identity the DS keeps its
//   own leaf map per group, updated from every accepted Commit with RFC 9420 §12.1.1 placement
//   rules (Adds go to the leftmost blank leaf, after Removes are applied, §12.3 ordering).
import { decodeMlsMessage } from "ts-mls"

const td = new TextDecoder()
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")

export function parseMls(bytes) {
  const r = decodeMlsMessage(bytes, 0)
  if (!r) throw new Error("not an MLSMessage")
  return r[0]
}

export function identityOf(credential) {
  if (credential.credentialType !== "basic") return `<${credential.credentialType}>`
  return td.decode(credential.identity)
}

// Per-group public roster the DS keeps: leafIndex -> identity ("user/device"), plus the epoch.
export class DeliveryService {
  constructor() {
    this.groups = new Map() // groupIdHex -> { epoch: bigint, leaves: (string|null)[], log: [] }
    this.keyPackages = new Map() // identity -> Uint8Array[] (encoded MLSMessage key packages)
  }

  // KeyPackage directory: validate it parses, is a key package, and the credential matches the uploader.
  uploadKeyPackage(uploader, bytes) {
    const m = parseMls(bytes)
    if (m.wireformat !== "mls_key_package") throw new Error("not a KeyPackage")
    const id = identityOf(m.keyPackage.leafNode.credential)
    if (id !== uploader) throw new Error(`credential ${id} != uploader ${uploader}`)
    if (m.keyPackage.cipherSuite !== "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519") throw new Error("suite")
    const list = this.keyPackages.get(id) ?? []
    list.push(bytes)
    this.keyPackages.set(id, list)
  }
  claimKeyPackage(identity) {
    const list = this.keyPackages.get(identity)
    if (!list?.length) throw new Error(`no key package for ${identity}`)
    return list.shift() // handed out once
  }

  // The creator registers the group (epoch 0, creator at leaf 0).
  createGroup(groupId, creatorIdentity) {
    this.groups.set(hex(groupId), { epoch: 0n, leaves: [creatorIdentity], log: [] })
  }

  // Accept or refuse a handshake message. Returns a summary or throws {code}.
  submitHandshake(bytes) {
    const m = parseMls(bytes)
    if (m.wireformat !== "mls_public_message") {
      const e = new Error("handshake must be a PublicMessage"); e.code = "E2EE_NOT_PUBLIC"; throw e
    }
    const c = m.publicMessage.content
    const g = this.groups.get(hex(c.groupId))
    if (!g) { const e = new Error("unknown group"); e.code = "E2EE_UNKNOWN_GROUP"; throw e }
    if (c.contentType !== "commit") { const e = new Error("only commits in spike"); e.code = "E2EE_UNSUPPORTED"; throw e }
    if (c.epoch !== g.epoch) {
      const e = new Error(`commit for epoch ${c.epoch}, group is at ${g.epoch}`); e.code = "E2EE_STALE_EPOCH"; throw e
    }
    const sender = c.sender.senderType === "member" ? g.leaves[c.sender.leafIndex] : c.sender.senderType
    const added = [], removed = [], updated = []
    const props = c.commit.proposals
    if (props.some((p) => p.proposalOrRefType !== "proposal")) {
      const e = new Error("proposals by reference not allowed"); e.code = "E2EE_PROPOSAL_REF"; throw e
    }
    // §12.3 order: update, remove, then add
    for (const { proposal: p } of props) if (p.proposalType === "update") updated.push(sender)
    for (const { proposal: p } of props) {
      if (p.proposalType !== "remove") continue
      const who = g.leaves[p.remove.removed]
      if (who == null) { const e = new Error("remove of blank leaf"); e.code = "E2EE_BAD_REMOVE"; throw e }
      removed.push({ leaf: p.remove.removed, identity: who })
      g.leaves[p.remove.removed] = null
    }
    // truncate trailing blanks (RFC 9420 §7.7 truncation happens after removes)
    while (g.leaves.length > 1 && g.leaves[g.leaves.length - 1] == null) g.leaves.pop()
    for (const { proposal: p } of props) {
      if (p.proposalType !== "add") continue
      const id = identityOf(p.add.keyPackage.leafNode.credential)
      let leaf = g.leaves.indexOf(null)
      if (leaf < 0) { leaf = g.leaves.length; g.leaves.push(id) } else g.leaves[leaf] = id
      added.push({ leaf, identity: id })
    }
    const summary = {
      groupId: td.decode(c.groupId), epoch: c.epoch, newEpoch: c.epoch + 1n, sender,
      added, removed, updated, hasPath: !!c.commit.path, bytes: bytes.length,
    }
    g.epoch += 1n
    g.log.push(summary)
    return summary
  }

  // Application messages: the DS only sees group id, epoch and opaque ciphertext.
  inspectApplication(bytes) {
    const m = parseMls(bytes)
    if (m.wireformat !== "mls_private_message") throw new Error("application must be PrivateMessage")
    const pm = m.privateMessage
    return { groupId: td.decode(pm.groupId), epoch: pm.epoch, contentType: pm.contentType, ciphertextBytes: pm.ciphertext.length }
  }
}
