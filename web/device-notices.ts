import { useEffect, useMemo, useState } from 'preact/hooks'
import type { DevicesChangedEvent, NatterClient } from '../client-sdk/src/index.ts'

/**
 * "Bob's devices changed" notices of encrypted chats, from the SDK's `devices.changed`: each
 * shows in the timeline at the Commit that changed the devices, so people know to compare
 * safety numbers again. The SDK says so once, when it applies the Commit (live or caught up),
 * so the notices are kept in sessionStorage per chat: a reload of the tab still shows them.
 */
export interface DeviceNotice {
  userId: string
  /** The epoch the Commit started (DevicesChangedEvent.epoch): its `mls_commit` event has epoch − 1. */
  epoch: number
  added: number
  removed: number
}

const key = (chatId: string) => `natter:device-notices:${chatId}`
/** At most this many notices kept per chat (the oldest go). */
const KEEP = 200

export function noticesOf(chatId: string): DeviceNotice[] {
  try {
    const v = JSON.parse(sessionStorage.getItem(key(chatId)) ?? '[]') as unknown
    return Array.isArray(v) ? (v as DeviceNotice[]) : []
  } catch {
    return []
  }
}

/**
 * Whether a change is one to tell about: a member who had devices in the group and still has
 * some. A user's first devices (the group made, a member added) and their last ones going (a
 * member left or removed) are said by the membership events already.
 */
export function worthTelling(e: DevicesChangedEvent): boolean {
  const before = e.devices.length - e.added.length + e.removed.length
  return before > 0 && e.devices.length > 0
}

/** Listeners of one chat's notices (its open conversation). */
const listeners = new Map<string, Set<() => void>>()

/**
 * Keeps the client's devices.changed notices worth telling, and tells the chat's listeners;
 * call once per client. Returns the unsubscribe.
 */
export function keepDeviceNotices(client: NatterClient): () => void {
  return client.on('devices.changed', (e) => {
    if (!worthTelling(e)) return
    const list = noticesOf(e.chatId).filter((n) => !(n.userId === e.userId && n.epoch === e.epoch))
    list.push({ userId: e.userId, epoch: e.epoch, added: e.added.length, removed: e.removed.length })
    sessionStorage.setItem(key(e.chatId), JSON.stringify(list.slice(-KEEP)))
    for (const f of listeners.get(e.chatId) ?? []) f()
  })
}

/**
 * The notices of one chat by the epoch of the Commit event they belong to (`mls_commit`'s
 * `epoch`, one less than the epoch the Commit started), redrawn when a new one comes.
 */
export function useDeviceNotices(chatId: string): Map<number, DeviceNotice[]> {
  const [list, setList] = useState(() => noticesOf(chatId))
  useEffect(() => {
    const f = () => setList(noticesOf(chatId))
    f()
    let set = listeners.get(chatId)
    if (!set) {
      set = new Set()
      listeners.set(chatId, set)
    }
    set.add(f)
    return () => {
      set.delete(f)
    }
  }, [chatId])
  return useMemo(() => {
    const by = new Map<number, DeviceNotice[]>()
    for (const n of list) by.set(n.epoch - 1, [...(by.get(n.epoch - 1) ?? []), n])
    return by
  }, [list])
}
