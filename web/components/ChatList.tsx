import { useSyncExternalStore } from 'preact/compat'
import { useEffect, useMemo, useState } from 'preact/hooks'
import type { ChatState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { isKeyEvent, previewOf, shortTimeOf } from '../format.ts'
import { memo } from '../memo.ts'
import { useNames } from '../names.ts'
import { Avatar, GroupAvatar } from './Avatar.tsx'
import { Lock } from './Lock.tsx'

/** How long (ms) to wait before loading the chat list again after a failed load. */
const RETRY_MS = 2000

/**
 * The user's chats, newest activity first: the client's chat list as an external store
 * (subscribeChats, getChatsSnapshot), loaded once connected (loadChats; after an offline start
 * it holds the chats with messages waiting in the outbox). Each row follows its own ChatState,
 * so a new message redraws its row and moves it, nothing else.
 */
export function ChatList({ current, onOpen }: { current: string | null; onOpen: (chatId: string) => void }) {
  const { client } = useApp()
  const all = useSyncExternalStore(client.subscribeChats, client.getChatsSnapshot)
  // Before chat.list answered, the client knows chats from what its inbox brought too, a group
  // the user left among them: only those the server described, or with messages waiting here.
  const chats = useMemo(
    () => all.filter((c) => c.loaded || c.pending.length > 0 || c.id === current),
    [all, current],
  )
  const [error, setError] = useState('')
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined
    let live = true
    let loaded = false
    // Loaded once connected; a load that fails (a timeout just after connecting) is tried again.
    const load = () => {
      clearTimeout(timer)
      if (!live || loaded || client.state !== 'connected') return
      client.loadChats().then(
        () => {
          loaded = true
          if (live) setError('')
        },
        (e: Error) => {
          if (!live) return
          if (client.state === 'connected') setError(`${sayError(e)} Trying again.`)
          timer = setTimeout(load, RETRY_MS)
        },
      )
    }
    // The SDK reads the list again after every reconnect once it was loaded.
    const off = client.on('state', load)
    load()
    return () => {
      live = false
      clearTimeout(timer)
      off()
    }
  }, [client])
  return (
    <nav aria-label="Chats">
      {error && <p role="alert">{error}</p>}
      {chats.length === 0 && !error && (
        // A chat open beside an empty list is one the user was removed from (the client forgot it).
        <p class="empty">
          {current ? 'You are in no chats now: start one above.' : 'No chats yet: start one above.'}
        </p>
      )}
      <ul id="chats">
        {chats.map((c) => (
          <ChatRow key={c.id} chat={c} active={c.id === current} onOpen={onOpen} />
        ))}
      </ul>
    </nav>
  )
}

const titleKey = (chatId: string) => `natter:title:${chatId}`

/**
 * A chat's title: the group's name, or the other member's display name. Each title shown is
 * kept in sessionStorage: a tab reloaded without a network (an offline start, with no summaries
 * or profiles yet) still names the chats whose messages wait.
 */
export function useTitle(chat: ChatState): string {
  const { me, names } = useApp()
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  const nameOf = useNames(names, peer ? [peer] : [])
  const title = chat.kind === 'group' ? chat.name : peer ? nameOf(peer) : null
  useEffect(() => {
    if (title) sessionStorage.setItem(titleKey(chat.id), title)
  }, [chat.id, title])
  return title ?? sessionStorage.getItem(titleKey(chat.id)) ?? (chat.kind === 'group' ? 'Group' : '…')
}

export function peerOf(chat: ChatState, me: string): string | null {
  return chat.members.find((m) => m.userId !== me)?.userId ?? null
}

const ChatRow = memo(function ChatRow({
  chat,
  active,
  onOpen,
}: {
  chat: ChatState
  active: boolean
  onOpen: (chatId: string) => void
}) {
  const { me, names } = useApp()
  const snap = useSyncExternalStore(chat.subscribe, chat.getSnapshot)
  const title = useTitle(chat)
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  // An encrypted chat's Commit says nothing to show in a list: the message before it does, when
  // held (the timeline of a chat opened in this tab).
  const last =
    snap.lastMessage && isKeyEvent(snap.lastMessage)
      ? (snap.messages.findLast((m) => !isKeyEvent(m)) ?? snap.lastMessage)
      : snap.lastMessage
  const nameOf = useNames(names, last ? [last.senderId] : [])
  let preview = last ? previewOf(last, nameOf) : ''
  if (last && last.kind === 'text' && last.deletedAt === null) {
    if (last.senderId === me) preview = `You: ${preview}`
    else if (chat.kind === 'group') preview = `${nameOf(last.senderId)}: ${preview}`
  }
  // Messages waiting in the outbox (offline, or refused) come after the last one stored.
  const waiting = snap.pending.at(-1)
  if (waiting) preview = `${waiting.failed ? 'Not sent' : 'Waiting'}: ${waiting.text || 'an attachment'}`
  const unread = active ? 0 : snap.unread
  return (
    <li data-chat-id={chat.id} class={active ? 'active' : ''}>
      <button
        type="button"
        class="chat-row"
        aria-current={active ? 'true' : undefined}
        onClick={() => onOpen(chat.id)}
      >
        {peer ? <Avatar userId={peer} /> : <GroupAvatar name={title} />}
        <span class="row-main">
          <span class="row-top">
            <span class="name">
              {chat.encrypted && <Lock />}
              {title}
            </span>
            {chat.lastActivityAt > 0 && <span class="time">{shortTimeOf(chat.lastActivityAt)}</span>}
          </span>
          <span class="row-bottom">
            <span class="preview">{preview}</span>
            {unread > 0 && (
              <span class="unread">
                {unread}
                <span class="visually-hidden"> unread</span>
              </span>
            )}
          </span>
        </span>
      </button>
    </li>
  )
})
