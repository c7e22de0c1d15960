import { useSyncExternalStore } from 'preact/compat'
import { useState } from 'preact/hooks'
import type { ChatState } from '../../client-sdk/src/index.ts'
import { useBusy } from '../busy.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { useNames } from '../names.ts'
import { Avatar } from './Avatar.tsx'

/** A group name's longest (characters, as chat.create and chat.rename take: docs/protocol.md#chats). */
export const GROUP_NAME_MAX = 100

/**
 * A group's members with their avatars and roles; admins rename the group, add and remove
 * members and make them admins (or members again); anyone leaves. A user no longer in the group
 * sees the list only. Each button is disabled while its request runs: a double click does it once.
 */
export function GroupInfo({
  chat,
  removed,
  onError,
}: {
  chat: ChatState
  removed: boolean
  onError: (message: string) => void
}) {
  const { me, names } = useApp()
  const snap = useSyncExternalStore(chat.subscribe, chat.getSnapshot)
  const all = snap.members
  // Once out, the list is the last one known, without the user.
  const members = removed ? all.filter((m) => m.userId !== me) : all
  const [add, setAdd] = useState('')
  const [name, setName] = useState<string | null>(null)
  const { busy, run } = useBusy()
  const nameOf = useNames(
    names,
    members.map((m) => m.userId),
  )
  const amAdmin = members.some((m) => m.userId === me && m.role === 'admin')
  const fail = (e: unknown) => onError(sayError(e))
  const manage = amAdmin && !removed
  return (
    <div id="group-info">
      {removed && <p class="members-note">Members when you were removed:</p>}
      {manage && (
        <form
          id="rename-group"
          onSubmit={(e) => {
            e.preventDefault()
            const next = (name ?? chat.name ?? '').trim()
            if (!next || next === chat.name) return
            run('rename', () => chat.rename(next))?.then(() => setName(null), fail)
          }}
        >
          <label for="group-title">Group name</label>
          <input
            id="group-title"
            required
            maxLength={GROUP_NAME_MAX}
            value={name ?? chat.name ?? ''}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy('rename')}>
            Rename
          </button>
        </form>
      )}
      <ul id="members" aria-label="Members">
        {members.map((m) => {
          const who = nameOf(m.userId)
          const admin = m.role === 'admin'
          return (
            <li key={m.userId} data-user-id={m.userId}>
              <Avatar userId={m.userId} size={24} />
              <span class="member-name">
                {who}
                {m.userId === me ? ' (you)' : ''}
              </span>
              {admin && <span class="role">admin</span>}
              {manage && m.userId !== me && (
                <span class="member-actions">
                  <button
                    type="button"
                    class="set-role"
                    disabled={busy(`role:${m.userId}`)}
                    aria-label={admin ? `Remove admin: ${who}` : `Make admin: ${who}`}
                    onClick={() =>
                      run(`role:${m.userId}`, () =>
                        chat.setRole(m.userId, admin ? 'member' : 'admin'),
                      )?.catch(fail)
                    }
                  >
                    {admin ? 'Remove admin' : 'Make admin'}
                  </button>
                  <button
                    type="button"
                    class="remove-member"
                    disabled={busy(`remove:${m.userId}`)}
                    aria-label={`Remove ${who}`}
                    onClick={() => run(`remove:${m.userId}`, () => chat.removeMember(m.userId))?.catch(fail)}
                  >
                    Remove
                  </button>
                </span>
              )}
            </li>
          )
        })}
      </ul>
      {manage && (
        <form
          id="add-member"
          onSubmit={(e) => {
            e.preventDefault()
            const ids = add
              .split(/[\s,]+/)
              .map((s) => s.trim())
              .filter(Boolean)
            if (!ids.length) return
            run('add', () => chat.addMembers(ids))?.then(() => setAdd(''), fail)
          }}
        >
          <label for="add-user">Add people</label>
          <input
            id="add-user"
            value={add}
            placeholder="names, comma separated"
            onInput={(e) => setAdd((e.target as HTMLInputElement).value)}
          />
          <button type="submit" disabled={busy('add')}>
            Add
          </button>
        </form>
      )}
      {!removed && (
        <button
          type="button"
          id="leave"
          disabled={busy('leave')}
          onClick={() => run('leave', () => chat.leave())?.catch(fail)}
        >
          Leave group
        </button>
      )}
    </div>
  )
}
