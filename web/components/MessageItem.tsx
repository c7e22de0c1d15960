import { useEffect, useRef, useState } from 'preact/hooks'
import type { ChatMessage, EncryptedMedia, MessageStatus, OutboxItem } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import type { DeviceNotice } from '../device-notices.ts'
import { sayRefusal } from '../error-words.ts'
import { describeEvent, previewOf, timeOf, usersOf } from '../format.ts'
import { memo } from '../memo.ts'
import { useName, useNames } from '../names.ts'
import { Attachment } from './Attachment.tsx'
import { Avatar } from './Avatar.tsx'
import { EncryptedAttachment } from './EncryptedAttachment.tsx'
import { Linkified } from './Linkified.tsx'

export const TICKS: Record<Exclude<MessageStatus, 'sending'>, string> = {
  sent: '✓',
  delivered: '✓✓',
  read: '✓✓',
  failed: '⚠',
}

/** A small clock drawn in the text colour: an emoji clock needs a colour-emoji font many systems lack. */
function Clock() {
  return (
    <svg class="clock" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">
      <circle cx="8" cy="8" r="6.5" fill="none" stroke="currentColor" stroke-width="1.5" />
      <path
        d="M8 4.5V8l2.5 1.5"
        fill="none"
        stroke="currentColor"
        stroke-width="1.5"
        stroke-linecap="round"
      />
    </svg>
  )
}

/** The ticks of a status: a clock while sending, else check marks (or ⚠ when refused). */
function Ticks({ status }: { status: MessageStatus }) {
  return status === 'sending' ? <Clock /> : TICKS[status]
}

/**
 * A message's media: by id (media.get), or in an encrypted chat by the descriptors the message
 * carried (`encryptedMedia`: type, name, key), decrypted on this device.
 */
function Attachments({
  media,
  encryptedMedia,
}: {
  media: readonly string[] | undefined
  encryptedMedia: readonly EncryptedMedia[] | undefined
}) {
  if (encryptedMedia) return encryptedMedia.map((d) => <EncryptedAttachment key={d.id} media={d} />)
  return (media ?? []).map((id) => <Attachment key={id} mediaId={id} />)
}

/** What a message's menu does: stable across renders (the list passes one object). */
export interface MessageActions {
  reply(m: ChatMessage): void
  edit(m: ChatMessage): void
  remove(m: ChatMessage): void
  /** Opens the encrypted chat's safety numbers (from a devices-changed notice). */
  verify(): void
}

/**
 * Why a message of an encrypted chat cannot be shown, in plain words, from the SDK's
 * `undecryptable` (docs/e2ee.md §9: MLS gives no history, and keys are used once).
 */
export function unreadableWords(m: ChatMessage): string {
  switch (m.undecryptable) {
    case 'this device is not in the group':
      return 'This message was sent before this device joined the chat, so it cannot be read here.'
    case 'sent by this device before it restarted':
      return 'You sent this from this browser, but its text was not kept here, so it cannot be shown.'
    case 'not read on this device yet':
      return 'Encrypted message, not read on this device yet.'
    default:
      return 'This message cannot be read on this device.'
  }
}

/**
 * One message: sender (in groups), text with links, media, time, edited mark, ticks for the
 * user's own, a quote of the message it replies to, and a menu (reply, edit, delete). Memoized:
 * it redraws only when its message, status or quote changed.
 */
export const MessageItem = memo(function MessageItem(p: {
  m: ChatMessage
  mine: boolean
  group: boolean
  status: MessageStatus | undefined
  quoted: ChatMessage | undefined
  actions: MessageActions
  /** The user is no longer a member: nothing to reply to, edit or delete. */
  readOnly: boolean
  /** Just jumped to (a search result): marked for a moment. */
  highlighted: boolean
  /** In an end-to-end encrypted chat: no edits (docs/e2ee.md §4: the server refuses them). */
  encrypted: boolean
  /** At an `mls_commit` event: the members whose devices that Commit changed. */
  notices?: readonly DeviceNotice[] | undefined
  /** The user's edits and deletes of this message that wait in the outbox, or were refused. */
  changes?: readonly OutboxItem[] | undefined
  /** Make a refused edit or delete again, or drop it (by its localId): stable across renders. */
  onRetry: (localId: string) => void
  onCancel: (localId: string) => void
}) {
  const { m, mine } = p
  const { names } = useApp()
  if (m.kind === 'event') {
    if (m.event?.type === 'mls_commit')
      return p.notices?.length ? (
        <DevicesChanged m={m} notices={p.notices} onVerify={p.readOnly ? null : p.actions.verify} />
      ) : null
    if (m.event?.type === 'mls_device_revoked') return null
    return <EventItem m={m} />
  }
  const deleted = m.deletedAt !== null
  const status = p.status ?? 'sent'
  return (
    <li
      data-seq={m.seq}
      class={`msg${mine ? ' mine' : ''}${deleted ? ' deleted' : ''}${p.highlighted ? ' highlight' : ''}`}
      data-status={mine ? status : undefined}
      // Focusable by script only: a search result jumped to takes the focus.
      tabIndex={-1}
    >
      {p.group && !mine ? (
        <Sender names={names} userId={m.senderId} />
      ) : (
        // Who wrote it, for screen readers: shown only by the bubble's side and colour.
        <SpokenSender userId={m.senderId} mine={mine} />
      )}
      {m.replyTo !== undefined && <Quote seq={m.replyTo} quoted={p.quoted} />}
      {deleted ? (
        <span class="text">This message was deleted</span>
      ) : (
        <>
          {m.text ? (
            <span class="text">
              <Linkified text={m.text} />
            </span>
          ) : m.undecryptable !== undefined || (p.encrypted && !m.media?.length) ? (
            // Not an empty bubble: why it cannot be read here.
            <span class="text undecryptable">{unreadableWords(m)}</span>
          ) : (
            <span class="text" />
          )}
          <Attachments media={m.media} encryptedMedia={p.encrypted ? (m.encryptedMedia ?? []) : undefined} />
        </>
      )}
      <span class="meta">
        {m.editedAt !== null && !deleted && <span class="edited">edited</span>}
        <time dateTime={new Date(m.at).toISOString()}>{timeOf(m.at)}</time>
        {mine && !deleted && (
          <span class="ticks" role="img" title={status} aria-label={status}>
            <Ticks status={status} />
          </span>
        )}
      </span>
      {!deleted && !p.readOnly && (
        <Menu m={m} mine={mine} editable={!p.encrypted && m.text !== null} actions={p.actions} />
      )}
      {p.changes?.map((c) => (
        <ChangeItem
          key={c.localId}
          item={c}
          readOnly={p.readOnly}
          onRetry={p.onRetry}
          onCancel={p.onCancel}
        />
      ))}
    </li>
  )
})

/**
 * An edit or delete of the user's that the server has not applied: on its way (offline, or
 * behind the message's send), or refused with why, its text kept, and Retry / Cancel (only
 * Remove once the user is no longer a member), as a refused message has.
 */
function ChangeItem({
  item,
  readOnly,
  onRetry,
  onCancel,
}: {
  item: OutboxItem
  readOnly: boolean
  onRetry: (localId: string) => void
  onCancel: (localId: string) => void
}) {
  const edit = item.op === 'edit'
  const failed = item.failed
  if (!failed) {
    return (
      <span class="change change-pending" data-op={item.op} data-local-id={item.localId}>
        {edit ? 'Edit waiting to be saved' : 'Delete waiting to be done'}
      </span>
    )
  }
  const why = readOnly ? 'you are no longer a member of this chat.' : sayRefusal(failed)
  return (
    <span class="change change-failed" data-op={item.op} data-local-id={item.localId}>
      <span class="failure">{`${edit ? 'Edit not saved' : 'Not deleted'}: ${why}`}</span>
      {edit && item.text !== undefined && (
        <span class="change-text" title="The edit's text">
          {item.text}
        </span>
      )}
      <span class="change-actions">
        {!readOnly && (
          <button type="button" class="retry" onClick={() => onRetry(item.localId)}>
            Retry
          </button>
        )}
        <button type="button" class="cancel" onClick={() => onCancel(item.localId)}>
          {readOnly ? 'Remove' : 'Cancel'}
        </button>
      </span>
    </span>
  )
}

function SpokenSender({ userId, mine }: { userId: string; mine: boolean }) {
  const { names } = useApp()
  const name = useName(names, userId)
  return <span class="visually-hidden spoken-sender">{mine ? 'You: ' : `${name}: `}</span>
}

function Sender({ names, userId }: { names: ReturnType<typeof useApp>['names']; userId: string }) {
  const name = useName(names, userId)
  return (
    <span class="sender">
      <Avatar userId={userId} size={20} />
      <span class="sender-name">{name}</span>
      <span class="visually-hidden">: </span>
    </span>
  )
}

function Quote({ seq, quoted }: { seq: number; quoted: ChatMessage | undefined }) {
  const { names } = useApp()
  const nameOf = useNames(names, quoted ? [quoted.senderId] : [])
  return (
    <blockquote class="quote" data-reply-to={seq}>
      {quoted ? (
        <>
          <span class="quote-sender">{nameOf(quoted.senderId)}</span>
          <span class="quote-text">{previewOf(quoted, nameOf)}</span>
        </>
      ) : (
        <span class="quote-text">An earlier message</span>
      )}
    </blockquote>
  )
}

/**
 * "Bob's devices changed" at the Commit that changed them: the safety number with Bob is new, so
 * people who compared it know to compare again (Verify opens the numbers).
 */
function DevicesChanged({
  m,
  notices,
  onVerify,
}: {
  m: ChatMessage
  notices: readonly DeviceNotice[]
  /** Null once the user is no longer a member: there are no numbers to compare then. */
  onVerify: (() => void) | null
}) {
  const { me, names } = useApp()
  const nameOf = useNames(
    names,
    notices.map((n) => n.userId),
  )
  const who = notices.map((n) => (n.userId === me ? 'Your' : `${nameOf(n.userId)}’s`))
  const text =
    who.length === 1
      ? `${who[0]} devices changed`
      : `${who.slice(0, -1).join(', ')} and ${(who.at(-1) ?? '').replace(/^Your/, 'your')} devices changed`
  return (
    <li data-seq={m.seq} class="event devices-changed">
      {onVerify ? (
        <>
          <span>
            {notices.every((n) => n.userId === me)
              ? // Only this user knows whether it was them: a device they did not add is the warning sign.
                'Your devices changed, and your safety numbers here with them. If you did not sign in or out somewhere, tell the others.'
              : `${text}: compare safety numbers again.`}
          </span>{' '}
          <button type="button" class="link-button" onClick={onVerify}>
            Verify
          </button>
        </>
      ) : (
        <span>{`${text}.`}</span>
      )}
    </li>
  )
}

function EventItem({ m }: { m: ChatMessage }) {
  const { names } = useApp()
  const nameOf = useNames(names, usersOf(m))
  return (
    <li data-seq={m.seq} class="event">
      {describeEvent(m, nameOf)}
    </li>
  )
}

/**
 * The message's actions as a menu (WAI-ARIA menu button pattern): opening moves the focus to the
 * first item, Up/Down (and Home/End) move between items, Escape or Tab closes it and Escape gives
 * the focus back to the button; a click elsewhere closes it.
 */
function Menu({
  m,
  mine,
  editable,
  actions,
}: {
  m: ChatMessage
  mine: boolean
  editable: boolean
  actions: MessageActions
}) {
  const [open, setOpen] = useState(false)
  const button = useRef<HTMLButtonElement>(null)
  const items = useRef<HTMLSpanElement>(null)
  const entries = () => [...(items.current?.querySelectorAll<HTMLButtonElement>('[role="menuitem"]') ?? [])]
  useEffect(() => {
    if (!open) return
    entries()[0]?.focus()
    const outside = (e: PointerEvent) => {
      if (!items.current?.contains(e.target as Node) && !button.current?.contains(e.target as Node))
        setOpen(false)
    }
    addEventListener('pointerdown', outside)
    return () => removeEventListener('pointerdown', outside)
  }, [open])
  const close = (refocus: boolean) => {
    setOpen(false)
    if (refocus) button.current?.focus()
  }
  const onKeyDown = (e: KeyboardEvent) => {
    const all = entries()
    const at = all.indexOf(document.activeElement as HTMLButtonElement)
    const to = (i: number) => {
      e.preventDefault()
      all[(i + all.length) % all.length]?.focus()
    }
    if (e.key === 'ArrowDown') to(at + 1)
    else if (e.key === 'ArrowUp') to(at - 1)
    else if (e.key === 'Home') to(0)
    else if (e.key === 'End') to(all.length - 1)
    else if (e.key === 'Escape') {
      e.preventDefault()
      e.stopPropagation()
      close(true)
    } else if (e.key === 'Tab') close(false)
  }
  const act = (f: (m: ChatMessage) => void) => () => {
    close(false)
    f(m)
  }
  return (
    <span class="menu">
      <button
        type="button"
        class="menu-button"
        ref={button}
        aria-label="Message actions"
        aria-haspopup="menu"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' && !open) {
            e.preventDefault()
            setOpen(true)
          }
        }}
      >
        ⋯
      </button>
      {open && (
        <span class="menu-items" role="menu" aria-label="Message actions" ref={items} onKeyDown={onKeyDown}>
          <button type="button" role="menuitem" tabIndex={-1} class="reply" onClick={act(actions.reply)}>
            Reply
          </button>
          {mine && editable && (
            <button type="button" role="menuitem" tabIndex={-1} class="edit" onClick={act(actions.edit)}>
              Edit
            </button>
          )}
          {mine && (
            <button type="button" role="menuitem" tabIndex={-1} class="delete" onClick={act(actions.remove)}>
              Delete
            </button>
          )}
        </span>
      )}
    </span>
  )
}

/**
 * One of the user's messages the server has not stored yet: on its way, or refused with its text
 * kept (Retry, Cancel; no Retry once the user is no longer a member).
 */
export function PendingItem({
  item,
  readOnly,
  onRetry,
  onCancel,
  onEdit,
  editable = true,
}: {
  item: OutboxItem
  readOnly: boolean
  /** Whether Edit (send again with other text) is offered: not in encrypted chats. */
  editable?: boolean
  onRetry: (localId: string) => void
  onCancel: (localId: string) => void
  /** Puts the refused message's text in the composer, to send it again changed (chat.retry with text). */
  onEdit: (item: OutboxItem) => void
}) {
  const failed = item.failed
  return (
    <li class="msg mine pending" data-status={failed ? 'failed' : 'sending'} data-local-id={item.localId}>
      <span class="text">
        <Linkified text={item.text ?? ''} />
      </span>
      <Attachments media={item.media} encryptedMedia={item.encryptedMedia} />
      <span class="meta">
        <span
          class="ticks"
          role="img"
          title={failed ? 'not sent' : 'sending'}
          aria-label={failed ? 'not sent' : 'sending'}
        >
          <Ticks status={failed ? 'failed' : 'sending'} />
        </span>
      </span>
      {failed && (
        <span class="failed-actions">
          <span class="failure">
            {readOnly
              ? 'Not sent: you are no longer a member of this chat.'
              : `Not sent: ${sayRefusal(failed)}`}
          </span>
          {!readOnly && (
            <button type="button" class="retry" onClick={() => onRetry(item.localId)}>
              Retry
            </button>
          )}
          {!readOnly && editable && item.text !== undefined && (
            <button type="button" class="edit-unsent" onClick={() => onEdit(item)}>
              Edit
            </button>
          )}
          <button type="button" class="cancel" onClick={() => onCancel(item.localId)}>
            {readOnly ? 'Remove' : 'Cancel'}
          </button>
        </span>
      )}
    </li>
  )
}
