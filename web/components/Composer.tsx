import { useEffect, useRef, useState } from 'preact/hooks'
import type { ChatMessage, ChatState, OutboxItem } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { previewOf } from '../format.ts'
import { useNames } from '../names.ts'
import { COUNTER_FROM, charactersIn, isBlank, MAX_TEXT_CHARS } from '../text-limit.ts'

/** What the composer is doing beside writing a new message. */
export type Mode =
  | { kind: 'new' }
  | { kind: 'reply'; to: ChatMessage }
  | { kind: 'edit'; of: ChatMessage }
  /** A refused message of the user's, sent again with new text (chat.retry). */
  | { kind: 'fix'; item: OutboxItem }

/**
 * The message box: multi-line (Enter sends, Shift+Enter a new line), typing indicators, a reply
 * or an edit under way, and one Attach button for images and files alike (what a picked file is
 * sent as follows its type: onAttach). Sends through the chat's outbox.
 */
export function Composer({
  chat,
  mode,
  setMode,
  onError,
  onAttach,
}: {
  chat: ChatState
  mode: Mode
  setMode: (m: Mode) => void
  onError: (message: string) => void
  onAttach: (file: File) => void
}) {
  const { client, names } = useApp()
  const draftKey = `natter:draft:${chat.id}`
  // The draft of each chat outlives a reload of the tab.
  const [text, setTextNow] = useState(() => sessionStorage.getItem(draftKey) ?? '')
  const setText = (v: string) => {
    setTextNow(v)
    if (v) sessionStorage.setItem(draftKey, v)
    else sessionStorage.removeItem(draftKey)
  }
  const box = useRef<HTMLTextAreaElement>(null)
  const target = mode.kind === 'reply' ? mode.to : mode.kind === 'edit' ? mode.of : null
  const nameOf = useNames(names, target ? [target.senderId] : [])
  useEffect(() => {
    if (mode.kind === 'edit') setText(mode.of.text ?? '')
    if (mode.kind === 'fix') setText(mode.item.text ?? '')
    if (mode.kind !== 'new') box.current?.focus()
  }, [mode])
  const count = charactersIn(text)
  const over = count > MAX_TEXT_CHARS

  const submit = () => {
    const t = text.trim()
    if (over) return
    // Media of a refused message go again with the new text; text alone must show something.
    if (isBlank(t) && !(mode.kind === 'fix' && mode.item.media?.length)) return
    setText('')
    onError('')
    client.stopTyping(chat.id)
    if (mode.kind === 'edit') {
      const seq = mode.of.seq
      // The same text again is no edit: nothing to send, and no "edited" mark.
      if (t !== mode.of.text?.trim()) {
        // A refusal the outbox keeps shows on the message (Retry, Cancel); anything else here.
        chat.edit(seq, t).catch((e: Error) => {
          if (!chat.pendingChanges.some((c) => c.seq === seq && c.failed)) onError(sayError(e))
        })
      }
    } else if (mode.kind === 'fix') {
      try {
        chat.retry(mode.item.localId, { text: t }).sent.catch(() => {})
      } catch (e) {
        onError(sayError(e))
      }
    } else if (mode.kind === 'reply') {
      chat.reply(mode.to.seq, t).sent.catch(() => {})
    } else {
      chat.send(t).sent.catch(() => {})
    }
    setMode({ kind: 'new' })
  }

  const attach = (input: HTMLInputElement) => {
    const files = [...(input.files ?? [])]
    input.value = ''
    for (const file of files) onAttach(file)
  }

  return (
    <form
      id="composer"
      onSubmit={(e) => {
        e.preventDefault()
        submit()
      }}
    >
      {target && (
        <div class="composing" data-mode={mode.kind}>
          <span>
            {mode.kind === 'edit' ? 'Editing' : `Replying to ${nameOf(target.senderId)}`}:{' '}
            <span class="composing-text">{previewOf(target, nameOf)}</span>
          </span>
          <button
            type="button"
            class="composing-cancel"
            aria-label={mode.kind === 'edit' ? 'Cancel the edit' : 'Cancel the reply'}
            onClick={() => {
              if (mode.kind === 'edit') setText('')
              setMode({ kind: 'new' })
            }}
          >
            ×
          </button>
        </div>
      )}
      {mode.kind === 'fix' && (
        <div class="composing" data-mode="fix">
          <span>Editing a message that was not sent</span>
          <button
            type="button"
            class="composing-cancel"
            aria-label="Stop editing the unsent message"
            onClick={() => {
              setText('')
              setMode({ kind: 'new' })
            }}
          >
            ×
          </button>
        </div>
      )}
      <div class="composer-row">
        <label for="text" class="visually-hidden">
          Message
        </label>
        <textarea
          id="text"
          ref={box}
          rows={1}
          placeholder="Message"
          value={text}
          aria-invalid={over}
          aria-describedby={count >= COUNTER_FROM ? 'char-count' : undefined}
          onInput={(e) => {
            const v = (e.target as HTMLTextAreaElement).value
            setText(v)
            if (v) client.typing(chat.id)
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
              e.preventDefault()
              submit()
            } else if (e.key === 'Escape' && mode.kind !== 'new') {
              if (mode.kind === 'edit' || mode.kind === 'fix') setText('')
              setMode({ kind: 'new' })
            }
          }}
        />
        <label
          class="attach button"
          title={chat.encrypted ? 'Send images or files, encrypted on this device' : 'Send images or files'}
        >
          <span>Attach</span>
          <input
            id="attach"
            type="file"
            multiple
            class="visually-hidden"
            onChange={(e) => attach(e.target as HTMLInputElement)}
          />
        </label>
        <button type="submit" disabled={over}>
          {mode.kind === 'edit' ? 'Save' : 'Send'}
        </button>
      </div>
      {count >= COUNTER_FROM && (
        <p id="char-count" class={over ? 'over' : ''} aria-live="polite">
          {over
            ? `${count - MAX_TEXT_CHARS} ${count - MAX_TEXT_CHARS === 1 ? 'character' : 'characters'} over the limit of ${MAX_TEXT_CHARS.toLocaleString('en')}`
            : `${count.toLocaleString('en')} of ${MAX_TEXT_CHARS.toLocaleString('en')} characters`}
        </p>
      )}
    </form>
  )
}
