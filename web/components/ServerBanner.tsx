import { useEffect, useState } from 'preact/hooks'

/** How often (ms) an unreachable server is asked again, and how long (ms) one try may take. */
const RETRY_MS = 3000
const TRY_MS = 4000

export type Reach = 'checking' | 'reachable' | 'unreachable' | 'offline'

const WORDS: Record<Reach, string> = {
  checking: '',
  reachable: '',
  unreachable: 'Can’t reach the server. Trying again…',
  offline: 'Offline: check your connection. Trying again once back…',
}

/**
 * Whether the server answers, for the screens without a connected client (sign-in): asked at
 * once, when the browser comes back online, when `failures` grows (a sign-in that could not reach
 * it), and every few seconds while it does not answer.
 */
export function useServerReach(failures: number): Reach {
  const [reach, setReach] = useState<Reach>(navigator.onLine ? 'checking' : 'offline')
  useEffect(() => {
    let live = true
    let timer: ReturnType<typeof setTimeout> | undefined
    const probe = () => {
      clearTimeout(timer)
      if (!navigator.onLine) {
        setReach('offline')
        return
      }
      fetch('/web/config.json', { cache: 'no-store', signal: AbortSignal.timeout(TRY_MS) }).then(
        (res) => {
          if (!live) return
          if (res.ok) setReach('reachable')
          else {
            setReach('unreachable')
            timer = setTimeout(probe, RETRY_MS)
          }
        },
        () => {
          if (!live) return
          setReach(navigator.onLine ? 'unreachable' : 'offline')
          timer = setTimeout(probe, RETRY_MS)
        },
      )
    }
    const down = () => {
      clearTimeout(timer)
      setReach('offline')
    }
    probe()
    addEventListener('online', probe)
    addEventListener('offline', down)
    return () => {
      live = false
      clearTimeout(timer)
      removeEventListener('online', probe)
      removeEventListener('offline', down)
    }
  }, [failures])
  return reach
}

/** The connection banner of the sign-in screen: says when the server cannot be reached, else nothing. */
export function ServerBanner({ reach }: { reach: Reach }) {
  return (
    <div id="connection" data-state={reach} role="status">
      {WORDS[reach]}
    </div>
  )
}
