import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createCommit, encodeMlsMessage } from 'ts-mls'
import { applyCommit, type LeafMap } from '../services/mls/leaf-map.ts'
import { decodeMessage, readCommit } from '../services/mls/mls-codec.ts'
import {
  cipherSuite,
  commitAdd,
  commitRemove,
  createChatGroup,
  type MlsMember,
  newKeyPackage,
} from './helpers/mls.ts'

/** The leaves of a ts-mls group state: its ratchet tree's leaf nodes (even node indexes). */
function leavesOf(member: MlsMember): LeafMap {
  const tree = member.state?.ratchetTree ?? []
  const out: LeafMap = []
  for (let i = 0; i < tree.length; i += 2) {
    const node = tree[i]
    out.push(
      node?.nodeType === 'leaf' && node.leaf.credential.credentialType === 'basic'
        ? new TextDecoder().decode(node.leaf.credential.identity)
        : null,
    )
  }
  while (out.length && out[out.length - 1] === null) out.pop()
  return out
}

describe('the leaf map', () => {
  it('puts Adds in the leftmost blank leaf after the Removes, and drops trailing blanks', () => {
    assert.deepEqual(applyCommit(['a', 'b', 'c', 'd'], { removes: [1, 3], adds: ['e'] }), {
      leaves: ['a', 'e', 'c'],
      removed: ['b', 'd'],
      added: [{ leaf: 1, identity: 'e' }],
    })
    assert.deepEqual(applyCommit(['a'], { removes: [], adds: ['b', 'c'] }).leaves, ['a', 'b', 'c'])
    assert.throws(() => applyCommit(['a', null, 'c'], { removes: [1], adds: [] }), RangeError)
    assert.throws(() => applyCommit(['a'], { removes: [5], adds: [] }), RangeError)
  })

  it('follows ts-mls’ own tree through 40 random Commits of adds and removes', async () => {
    const cs = await cipherSuite()
    let n = 0
    const creator: MlsMember = { identity: 'u0/d', kp: await newKeyPackage('u0/d') }
    await createChatGroup('c_leafmap', creator)
    let leaves: LeafMap = ['u0/d']
    // A fixed pseudo-random sequence, so a failure repeats.
    let seed = 7
    const rand = (k: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % k
    }
    for (let round = 0; round < 40; round++) {
      const members = leaves.map((id, leaf) => ({ id, leaf })).filter((x) => x.id !== null && x.leaf !== 0)
      const removes = members.filter(() => rand(4) === 0).map((x) => x.leaf)
      const adds = await Promise.all(
        Array.from({ length: rand(3) }, async () => {
          const id = `u${++n}/d`
          return (await newKeyPackage(id)).bytes
        }),
      )
      const made =
        removes.length && adds.length
          ? await (async () => {
              // ts-mls applies one Commit's proposals together; build it with both kinds.
              const extraProposals = [
                ...removes.map((removed) => ({ proposalType: 'remove' as const, remove: { removed } })),
                ...adds.map((b) => {
                  const m = decodeMessage(b)
                  if (m.wireformat !== 'mls_key_package') throw new Error('not a KeyPackage')
                  return { proposalType: 'add' as const, add: { keyPackage: m.keyPackage } }
                }),
              ]
              if (!creator.state) throw new Error('no state')
              const r = await createCommit(
                { state: creator.state, cipherSuite: cs },
                { extraProposals, wireAsPublicMessage: true },
              )
              return { commit: encodeMlsMessage(r.commit), newState: r.newState }
            })()
          : adds.length
            ? await commitAdd(creator, adds)
            : await commitRemove(creator, removes)
      const read = readCommit(made.commit)
      const ids = read.proposals.flatMap((p) => (p.type === 'add' && p.identity ? [p.identity] : []))
      const rm = read.proposals.flatMap((p) => (p.type === 'remove' ? [p.leaf] : []))
      leaves = applyCommit(leaves, { removes: rm, adds: ids }).leaves
      creator.state = made.newState
      assert.deepEqual(leaves, leavesOf(creator), `round ${round}`)
    }
  })
})
