import { useEffect, useMemo, useState } from 'preact/hooks'
import type { NatterClient } from '../../client-sdk/src/index.ts'
import { App, type AppContext } from '../context.ts'
import { Names } from '../names.ts'
import { Banner } from './Banner.tsx'
import { Conversation } from './Conversation.tsx'
import { Sidebar } from './Sidebar.tsx'

/**
 * The signed-in page: the connection banner, the chat list and the open chat side by side, or
 * one at a time on a narrow screen (data-pane says which).
 */
export function Shell({ client, onSignOut }: { client: NatterClient; onSignOut: () => void }) {
  const [current, setCurrent] = useState<string | null>(null)
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
        {current ? (
          <Conversation key={current} chat={client.chat(current)} onBack={() => setCurrent(null)} />
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
