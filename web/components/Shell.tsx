import { useCallback, useEffect, useMemo, useState } from 'preact/hooks'
import type { NatterClient } from '../../client-sdk/src/index.ts'
import { App, type AppContext } from '../context.ts'
import { keepDeviceNotices } from '../device-notices.ts'
import { Names } from '../names.ts'
import { Banner } from './Banner.tsx'
import { Conversation } from './Conversation.tsx'
import { Sidebar } from './Sidebar.tsx'

const OPEN_KEY = 'natter:open-chat'

const keys = new WeakMap<object, number>()
let nextKey = 0
/** A key per ChatState instance (Preact keys are compared as values). */
function keyOf(chat: object): number {
  const known = keys.get(chat)
  if (known !== undefined) return known
  keys.set(chat, nextKey)
  return nextKey++
}

/**
 * The signed-in page: the connection banner, the chat list and the open chat side by side, or
 * one at a time on a narrow screen (data-pane says which).
 */
export function Shell({ client, onSignOut }: { client: NatterClient; onSignOut: () => void }) {
  // The open chat outlives a reload of the tab, like the session and the drafts.
  const [current, setCurrentNow] = useState<string | null>(() => sessionStorage.getItem(OPEN_KEY))
  const setCurrent = useCallback((next: string | null | ((c: string | null) => string | null)) => {
    setCurrentNow((c) => {
      const chatId = typeof next === 'function' ? next(c) : next
      if (chatId) sessionStorage.setItem(OPEN_KEY, chatId)
      else sessionStorage.removeItem(OPEN_KEY)
      return chatId
    })
  }, [])
  // One ChatState per open chat: one the client forgot (the user was removed) stays shown,
  // read-only, until the user is added back: the client then has a new ChatState for the chat
  // (chat.added), which this takes (`added` counts those of the open chat).
  const [added, setAdded] = useState(0)
  const chat = useMemo(() => (current ? client.chat(current) : null), [client, current, added])
  const [said, setSaid] = useState('')
  const ctx = useMemo<AppContext>(
    () => ({ client, me: client.userId, names: new Names(client), announce: setSaid }),
    [client],
  )
  useEffect(() => {
    const offRemoved = client.on('chat.removed', (r) => {
      // Left from this page: back to the list. Removed by an admin: the chat stays, read-only.
      if (r.reason === 'left') setCurrent((c) => (c === r.chatId ? null : c))
    })
    const offAdded = client.on('chat.added', (a) => {
      if (a.id === sessionStorage.getItem(OPEN_KEY)) setAdded((n) => n + 1)
    })
    return () => {
      offRemoved()
      offAdded()
    }
  }, [client])
  // Kept for every encrypted chat, open or not: the SDK says it once, when it applies the Commit.
  useEffect(() => keepDeviceNotices(client), [client])
  useEffect(() => {
    // The tab's title counts the unread messages of every chat: seen from another tab.
    const update = () => {
      const n = client.chats().reduce((sum, c) => sum + c.unread, 0)
      document.title = n > 0 ? `(${n}) Natter` : 'Natter'
    }
    update()
    const offs = [client.on('chats.updated', update), client.on('unread.updated', update)]
    return () => {
      for (const off of offs) off()
      document.title = 'Natter'
    }
  }, [client])
  return (
    <App.Provider value={ctx}>
      <div id="app" data-pane={current ? 'chat' : 'list'}>
        {/* The page's one h1, for screen readers (the sign-in page shows its own). */}
        <h1 class="visually-hidden">Natter</h1>
        <Banner />
        <Sidebar current={current} onOpen={setCurrent} onSignOut={onSignOut} />
        {chat ? (
          // Keyed by the ChatState itself: a new one (added back to the group) is a new conversation.
          <Conversation key={keyOf(chat)} chat={chat} onBack={() => setCurrent(null)} />
        ) : (
          <main id="placeholder">
            <p>Pick a chat, or start one.</p>
          </main>
        )}
        <div id="announcer" class="visually-hidden" aria-live="polite">
          {said}
        </div>
      </div>
    </App.Provider>
  )
}
