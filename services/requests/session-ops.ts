import { z } from 'zod'
import type { RequestRouter } from './router.ts'

/** Operations about the caller's own connection. */
export function registerSessionOps(router: RequestRouter): void {
  router.register('whoami', {
    params: z.object({}).strict(),
    handle: (ctx) => ({
      userId: ctx.who.userId,
      deviceId: ctx.who.deviceId,
      tokenExpiresAt: new Date(ctx.tokenExpiresAt).toISOString(),
    }),
  })
}
