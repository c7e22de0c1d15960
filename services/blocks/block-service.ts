import { NatterError } from '../requests/envelope.ts'
import type { Operations } from '../requests/operations.ts'
import type { RequestRouter } from '../requests/router.ts'
import type { BlockIndex } from './block-index.ts'
import type { BlockStore } from './block-store.ts'

/**
 * user.block, user.unblock and user.blocked (docs/protocol.md#blocking). The block is written to
 * the store first, then to this node's index (the other nodes of a cluster are told through
 * the index's onChange). The blocked user is never sent anything about it.
 */
export class BlockService {
  readonly #store: BlockStore
  readonly #index: BlockIndex
  readonly #ops: Operations

  constructor(d: { store: BlockStore; index: BlockIndex; ops: Operations }) {
    this.#store = d.store
    this.#index = d.index
    this.#ops = d.ops
  }

  register(router: RequestRouter): void {
    const ops = this.#ops
    router.register('user.block', {
      params: ops['user.block'].params,
      handle: async (ctx, p) => {
        if (p.userId === ctx.who.userId) throw new NatterError('bad_request', 'you cannot block yourself')
        const at = Date.now()
        // Blocking twice keeps the first block's time; the answer is the same either way.
        await this.#store.block({ blockerId: ctx.who.userId, blockedId: p.userId, at })
        this.#index.add(ctx.who.userId, p.userId)
        const block = await this.#store.get(ctx.who.userId, p.userId)
        return { userId: p.userId, at: block?.at ?? at }
      },
    })
    router.register('user.unblock', {
      params: ops['user.unblock'].params,
      handle: async (ctx, p) => {
        const was = await this.#store.unblock(ctx.who.userId, p.userId)
        this.#index.remove(ctx.who.userId, p.userId)
        return { userId: p.userId, wasBlocked: was }
      },
    })
    router.register('user.blocked', {
      params: ops['user.blocked'].params,
      handle: async (ctx) => {
        const blocks = await this.#store.blockedBy(ctx.who.userId)
        return { users: blocks.map((b) => ({ userId: b.blockedId, at: b.at })) }
      },
    })
  }
}
