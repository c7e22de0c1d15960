import { useCallback, useEffect, useMemo, useState } from 'preact/hooks'
import type { NatterClient } from '../../client-sdk/src/index.ts'
import { App, type AppContext } from '../context.ts'
import { Names } from '../names.ts'
import { Banner } from './Banner.tsx'
import { Conversation } from './Conversation.tsx'
import { Sidebar } from './Sidebar.tsx'

const OPEN_KEY = 'natter:open-chat'

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
  // One ChatState per open chat: one the client forgot (the user was removed) stays shown, read-only.
  const chat = useMemo(() => (current ? client.chat(current) : null), [client, current])
  const [said, setSaid] = useState('')
  const ctx = useMemo<AppContext>(
    () => ({ client, me: client.userId, names: new Names(client), announce: setSaid }),
    [client],
  )
  useEffect(
    () =>
      client.on('chat.removed', (r) => {
        // Left from this page: back to the list. Removed by an admin: the chat stays, read-only.
        if (r.reason === 'left') setCurrent((c) => (c === r.chatId ? null : c))
      }),
    [client],
  )
  return (
    <App.Provider value={ctx}>
      <div id="app" data-pane={current ? 'chat' : 'list'}>
        <Banner />
        <Sidebar current={current} onOpen={setCurrent} onSignOut={onSignOut} />
        {chat ? (
          <Conversation key={chat.id} chat={chat} onBack={() => setCurrent(null)} />
        ) : (
          <section id="placeholder" aria-hidden="true">
            <p>Pick a chat, or start one.</p>
          </section>
        )}
        <div id="announcer" class="visually-hidden" aria-live="polite">
          {said}
        </div>
      </div>
    </App.Provider>
  )
}
