import { useEffect, useState } from 'preact/hooks'
import type { ChatState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { previewOf, shortTimeOf } from '../format.ts'
import { memo } from '../memo.ts'
import { useNames } from '../names.ts'
import { Avatar, GroupAvatar } from './Avatar.tsx'

/**
 * The user's chats, newest activity first (client.chats(), chats.updated). Each row follows its
 * own ChatState ('updated'): a new message redraws its row and moves it, nothing else.
 */
export function ChatList({ current, onOpen }: { current: string | null; onOpen: (chatId: string) => void }) {
  const { client } = useApp()
  const [chats, setChats] = useState<ChatState[]>(() => client.chats())
  const [error, setError] = useState('')
  useEffect(() => {
    const off = client.on('chats.updated', setChats)
    setChats(client.chats())
    let timer: ReturnType<typeof setTimeout> | undefined
    let live = true
    // A first load that fails (a timeout just after connecting) is tried again until it works.
    const load = () =>
      client.loadChats().then(
        (chats) => {
          if (!live) return
          setError('')
          setChats(chats)
        },
        (e: Error) => {
          if (!live) return
          setError(`${e.message}; trying again`)
          timer = setTimeout(load, 2000)
        },
      )
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
      {chats.length === 0 && !error && <p class="empty">No chats yet: start one above.</p>}
      <ul id="chats">
        {chats.map((c) => (
          <ChatRow key={c.id} chat={c} active={c.id === current} onOpen={onOpen} />
        ))}
      </ul>
    </nav>
  )
}

/** A chat's title: the group's name, or the other member's display name. */
export function useTitle(chat: ChatState): string {
  const { me, names } = useApp()
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  const nameOf = useNames(names, peer ? [peer] : [])
  if (chat.kind === 'group') return chat.name ?? 'Group'
  return peer ? nameOf(peer) : '…'
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
  const [, bump] = useState(0)
  useEffect(() => {
    const off = chat.on('updated', () => bump((n) => n + 1))
    // What changed between the first render and the subscription (a summary that just came).
    bump((n) => n + 1)
    return off
  }, [chat])
  const title = useTitle(chat)
  const peer = chat.kind === 'direct' ? peerOf(chat, me) : null
  const last = chat.lastMessage
  const nameOf = useNames(names, last ? [last.senderId] : [])
  let preview = last ? previewOf(last, nameOf) : ''
  if (last && last.kind === 'text' && last.deletedAt === null) {
    if (last.senderId === me) preview = `You: ${preview}`
    else if (chat.kind === 'group') preview = `${nameOf(last.senderId)}: ${preview}`
  }
  const unread = active ? 0 : chat.unread
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
            <span class="name">{title}</span>
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
