/**
 * The Delivery Service's own map of a group's leaves: leaf index → the device there
 * (`userId/deviceId`), or null for a blank leaf. Remove proposals name only a leaf index, so
 * the DS follows each accepted Commit with RFC 9420's placement rules to know whom they remove.
 */
export type LeafMap = (string | null)[]

/**
 * The leaves after a Commit's Removes and Adds, applied as RFC 9420 §12.3 orders them (every
 * Remove, then every Add in the order listed): a Remove blanks its leaf; an Add takes the
 * leftmost blank leaf, or extends the tree (§7.7). Trailing blank leaves are dropped (the tree
 * truncates, §7.8; an Add's place is the same with or without them). Updates and an UpdatePath
 * change keys, not places.
 *
 * @throws RangeError when a Remove names a leaf that is blank or past the end
 */
export function applyCommit(
  leaves: LeafMap,
  change: { removes: number[]; adds: string[] },
): { leaves: LeafMap; removed: string[]; added: { leaf: number; identity: string }[] } {
  const next = [...leaves]
  const removed: string[] = []
  for (const leaf of change.removes) {
    const who = next[leaf]
    if (who === undefined || who === null) throw new RangeError(`leaf ${leaf} is not a member`)
    removed.push(who)
    next[leaf] = null
  }
  const added: { leaf: number; identity: string }[] = []
  for (const identity of change.adds) {
    let leaf = next.indexOf(null)
    if (leaf < 0) leaf = next.length
    next[leaf] = identity
    added.push({ leaf, identity })
  }
  while (next.length > 0 && next[next.length - 1] === null) next.pop()
  return { leaves: next, removed, added }
}
