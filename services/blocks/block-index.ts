import type { Block } from './block-store.ts'

/**
 * Who blocks whom, in memory, so that the broker's delivery check (authorizeForward, which is
 * synchronous) and the send path can ask on every packet. Loaded from the block store at start
 * and updated by the block service on every change it makes; in a cluster the other nodes are
 * told (broker/node.ts) and reload the pair from the shared store.
 */
export class BlockIndex {
  /** blockerId → the users they block. */
  readonly #blocks = new Map<string, Set<string>>()
  /** Called after a local change to a block (a cluster tells the other nodes). */
  onChange: ((blockerId: string, blockedId: string) => void) | undefined

  load(blocks: Iterable<Block>): void {
    for (const b of blocks) this.#put(b.blockerId, b.blockedId)
  }

  /** Replaces every block with the store's list (the periodic resync of a cluster node). */
  replaceAll(blocks: Iterable<Block>): void {
    this.#blocks.clear()
    this.load(blocks)
  }

  /** Sets one pair as the store has it, after another node changed it. */
  set(blockerId: string, blockedId: string, blocked: boolean): void {
    if (blocked) this.#put(blockerId, blockedId)
    else this.#forget(blockerId, blockedId)
  }

  add(blockerId: string, blockedId: string): void {
    this.#put(blockerId, blockedId)
    this.onChange?.(blockerId, blockedId)
  }

  remove(blockerId: string, blockedId: string): void {
    this.#forget(blockerId, blockedId)
    this.onChange?.(blockerId, blockedId)
  }

  #put(blockerId: string, blockedId: string): void {
    let set = this.#blocks.get(blockerId)
    if (!set) {
      set = new Set()
      this.#blocks.set(blockerId, set)
    }
    set.add(blockedId)
  }

  #forget(blockerId: string, blockedId: string): void {
    const set = this.#blocks.get(blockerId)
    if (!set) return
    set.delete(blockedId)
    if (set.size === 0) this.#blocks.delete(blockerId)
  }

  /** Whether blockerId blocks blockedId (one way). */
  blocks(blockerId: string, blockedId: string): boolean {
    return this.#blocks.get(blockerId)?.has(blockedId) ?? false
  }

  /** Whether either of the two users blocks the other. */
  eitherBlocks(a: string, b: string): boolean {
    return this.blocks(a, b) || this.blocks(b, a)
  }
}
