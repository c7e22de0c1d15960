// Runs a command (the node test runner) and passes its output through, watching for a hang: when
// the command prints nothing for --quiet seconds (no single test may take longer than the
// runner's --test-timeout, so silence that long means a process that will not end), it prints
// what is still running (the process tree with kernel wait channels, each Node process's
// JavaScript stack and open handles from a diagnostic report), then kills the test files'
// processes that are stuck (and whatever holds their output open) so the runner reports them as
// failed and goes on. A second silence after that, or --limit seconds in all, kills the whole
// tree. If the killed files were the run's only failures, they run once more on their own; the
// run passes only if that second run passes and ends by itself, and it says so loudly.
//
// Why: a CI run once sat for 83 minutes after a test file had passed every test, until CI's
// 90-minute limit cut it, with nothing in the log to say which process waited for what.
//
// Usage: node scripts/test-watchdog.ts [--quiet=S] [--limit=S] -- command args...
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { join } from 'node:path'

const separator = process.argv.indexOf('--')
if (separator < 0) throw new Error('usage: test-watchdog.ts [--quiet=S] [--limit=S] -- command args...')
const options = new Map(
  process.argv
    .slice(2, separator)
    .map((a) => a.replace(/^--/, '').split('=') as [string, string])
    .map(([k, v]) => [k, Number(v)] as const),
)
const quietMs = (options.get('quiet') ?? 420) * 1000
const limitMs = (options.get('limit') ?? 3000) * 1000
const [command, ...args] = process.argv.slice(separator + 1)
if (!command) throw new Error('test-watchdog.ts: no command after --')

const reportDir = join(process.cwd(), 'test-output', 'hang-reports')
rmSync(reportDir, { recursive: true, force: true })
mkdirSync(reportDir, { recursive: true })

// Every Node process of the run (runner, test files, servers they start) answers SIGUSR2 with a
// diagnostic report (JavaScript stack, libuv handles); nothing in Natter uses SIGUSR2.
const nodeOptions = [
  process.env.NODE_OPTIONS ?? '',
  '--report-on-signal',
  '--report-signal=SIGUSR2',
  '--report-compact',
  `--report-directory=${reportDir}`,
]
  .join(' ')
  .trim()

const say = (line: string) => process.stdout.write(`test-watchdog: ${line}\n`)

/** The pids under `root` (not root itself), parents before children. */
function descendants(root: number): { pid: number; ppid: number; args: string }[] {
  const out = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout ?? ''
  const all = out
    .split('\n')
    .map((l) => l.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] ?? '' }))
  const found: typeof all = []
  const queue = [root]
  while (queue.length > 0) {
    const parent = queue.shift() as number
    for (const p of all.filter((q) => q.ppid === parent)) {
      found.push(p)
      queue.push(p.pid)
    }
  }
  return found
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

/** Prints the tree, asks every Node process for a report, and prints what the reports hold. */
async function diagnose(root: number): Promise<void> {
  for (const old of readdirSync(reportDir)) rmSync(join(reportDir, old), { force: true })
  const tree = descendants(root)
  const pids = [root, ...tree.map((p) => p.pid)].join(',')
  const ps = spawnSync('ps', ['-o', 'pid,ppid,stat,etimes,wchan:30,rss,args', '--forest', '-p', pids], {
    encoding: 'utf8',
  })
  say('processes of the test run (stat, seconds alive, kernel wait channel, RSS KiB):')
  process.stdout.write(ps.stdout ?? '')
  const nodes = [root, ...tree.map((p) => p.pid)].filter((pid) =>
    readSafe(`/proc/${pid}/cmdline`).split('\0')[0]?.endsWith('node'),
  )
  for (const pid of nodes) {
    try {
      process.kill(pid, 'SIGUSR2')
    } catch {}
  }
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const seen = new Set<number>()
  for (const file of readdirSync(reportDir)) {
    try {
      const report = JSON.parse(readFileSync(join(reportDir, file), 'utf8'))
      const pid = report.header?.processId as number
      seen.add(pid)
      const argv = (report.header?.commandLine ?? []).slice(1).join(' ').slice(0, 200)
      say(`report of pid ${pid} (${argv}):`)
      const stack = report.javascriptStack?.stack ?? []
      process.stdout.write(`  JavaScript: ${report.javascriptStack?.message ?? ''}\n`)
      for (const frame of stack.slice(0, 12)) process.stdout.write(`    ${frame}\n`)
      const handles = (report.libuv ?? []).filter((h: { is_active?: boolean }) => h.is_active)
      process.stdout.write(`  active handles (${handles.length}):\n`)
      for (const h of handles.slice(0, 30)) {
        const { type, is_referenced, ...rest } = h
        const detail = Object.entries(rest)
          .filter(([k]) => k !== 'address' && k !== 'is_active')
          .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
          .join(' ')
        process.stdout.write(`    ${type}${is_referenced ? '' : ' (unref)'} ${detail}\n`)
      }
    } catch (err) {
      say(`unreadable report ${file}: ${(err as Error).message}`)
    }
  }
  for (const pid of nodes.filter((p) => !seen.has(p))) {
    // A process that cannot run its signal handler is stuck below JavaScript: show the kernel's view.
    say(`pid ${pid} wrote no report; kernel stacks of its threads:`)
    const tasks = (() => {
      try {
        return readdirSync(`/proc/${pid}/task`)
      } catch {
        return []
      }
    })()
    for (const tid of tasks) {
      const comm = readSafe(`/proc/${pid}/task/${tid}/comm`).trim()
      const wchan = readSafe(`/proc/${pid}/task/${tid}/wchan`).trim()
      const stack = readSafe(`/proc/${pid}/task/${tid}/stack`).trim().split('\n').slice(0, 6).join(' | ')
      process.stdout.write(`    ${tid} ${comm} wchan=${wchan} ${stack}\n`)
    }
  }
}

/**
 * Processes other than the runner that hold the other end of the runner's sockets (Node gives
 * each test file's stdout and stderr as a socket pair). The runner waits for those to close, so
 * a server a test started with inherited output, left running after the test file exited, keeps
 * the runner waiting for ever; once orphaned it is no longer under the runner in the process
 * tree, so only the socket finds it. Needs `ss` (iproute2); without it, returns nothing.
 */
function socketHolders(runner: number): { pid: number; args: string }[] {
  const socketsOf = (pid: number, skipStdio: boolean): Set<string> => {
    const found = new Set<string>()
    let fds: string[] = []
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      return found
    }
    for (const fd of fds) {
      if (skipStdio && Number(fd) <= 2) continue
      try {
        const m = readlinkSync(`/proc/${pid}/fd/${fd}`).match(/^(?:socket|pipe):\[(\d+)\]$/)
        if (m?.[1]) found.add(m[1])
      } catch {}
    }
    return found
  }
  // What the watchdog holds too was inherited from whatever started it (a shell, CI): not ours.
  const inherited = socketsOf(process.pid, false)
  const mine = [...socketsOf(runner, true)].filter((i) => !inherited.has(i))
  const ss = spawnSync('ss', ['-xpnH'], { encoding: 'utf8' })
  if (ss.error || ss.status !== 0) return []
  const rows = (ss.stdout ?? '').split('\n').map((line) => {
    const m = line.match(/^\S+\s+\S+\s+\d+\s+\d+\s+\S*\s+(\d+)\s+\S*\s+(\d+)\s*(.*)$/)
    const pids = [...(m?.[3] ?? '').matchAll(/pid=(\d+)/g)].map((p) => Number(p[1]))
    return { inode: m?.[1], peer: m?.[2], pids }
  })
  const peers = new Set(rows.filter((r) => r.inode && mine.includes(r.inode)).map((r) => r.peer))
  const pids = new Set(
    rows.filter((r) => r.inode && peers.has(r.inode)).flatMap((r) => r.pids.filter((p) => p !== runner)),
  )
  return [...pids].map((pid) => ({
    pid,
    args: readSafe(`/proc/${pid}/cmdline`).split('\0').join(' ').trim().slice(0, 240),
  }))
}

function killTree(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {}
  }
}

interface RunResult {
  code: number
  output: string
  /** Test files whose processes were killed as stuck (their path as given on the command line). */
  killedFiles: string[]
  /** Whether the whole run had to be killed. */
  killedAll: boolean
}

/** Runs the command with `fileArgs` as its test files, watching it as the header says. */
function run(fileArgs: string[]): Promise<RunResult> {
  const started = Date.now()
  let lastOutput = Date.now()
  let output = ''
  const result: RunResult = { code: 0, output: '', killedFiles: [], killedAll: false }
  const child = spawn(command as string, [...runnerArgs, ...fileArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
  })
  child.stdout.on('data', (chunk: Buffer) => {
    lastOutput = Date.now()
    output += chunk.toString('utf8')
    process.stdout.write(chunk)
  })
  child.stderr.on('data', (chunk: Buffer) => {
    lastOutput = Date.now()
    process.stderr.write(chunk)
  })
  let diagnosing = false
  const timer = setInterval(async () => {
    if (diagnosing || child.pid === undefined || child.exitCode !== null) return
    const quietFor = Date.now() - lastOutput
    const total = Date.now() - started
    if (quietFor < quietMs && total < limitMs) return
    diagnosing = true
    const why =
      total >= limitMs
        ? `the run has taken ${Math.round(total / 1000)} s, over the ${limitMs / 1000} s limit`
        : `no output for ${Math.round(quietFor / 1000)} s`
    say(`${why}; something is stuck.`)
    await diagnose(child.pid)
    const holders = socketHolders(child.pid)
    for (const h of holders) say(`pid ${h.pid} holds a test file's output open: ${h.args}`)
    const tree = descendants(child.pid)
    if (result.killedFiles.length > 0 || total >= limitMs) {
      say('killing the whole test run')
      result.killedAll = true
      killTree([...tree.map((p) => p.pid).reverse(), ...holders.map((h) => h.pid), child.pid])
    } else {
      // The runner's direct children are the test files' processes: kill them and what they
      // started, and whatever holds their output.
      const files = tree.filter((p) => p.ppid === child.pid)
      for (const file of files) {
        const path = fileArgs.find((f) => file.args.endsWith(f)) ?? file.args.slice(-120)
        say(`killing the stuck test file process ${file.pid}: ${path}`)
        result.killedFiles.push(path)
        killTree([
          ...descendants(file.pid)
            .map((p) => p.pid)
            .reverse(),
          file.pid,
        ])
      }
      killTree(holders.map((h) => h.pid))
      if (files.length === 0) result.killedFiles.push('(no file process: only what held its output)')
    }
    lastOutput = Date.now()
    diagnosing = false
  }, 5000)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => child.kill(signal))
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearInterval(timer)
      result.code = code ?? (signal ? 1 : 0)
      result.output = output
      resolve(result)
    })
  })
}

/** The files the runner lists under "failing tests" ("test at test/x.test.ts:1:1"). */
function failingFiles(output: string): Set<string> {
  const tail = output.slice(output.lastIndexOf('failing tests:'))
  return new Set([...tail.matchAll(/^test at (.+?):\d+:\d+$/gm)].map((m) => m[1] as string))
}

const isFile = (a: string) => /\.test\.[cm]?[jt]s$/.test(a)
const runnerArgs = args.filter((a) => !isFile(a))
const first = await run(args.filter(isFile))
process.exitCode = first.code
if (first.killedFiles.length > 0) {
  // A file killed as stuck after its tests ran gets one more run on its own: the first run's
  // failures must all be killed files and the second run must pass and end by itself. Either
  // way the log above keeps what was stuck, and the run says so at its end.
  const holdersOnly = first.killedFiles.every((f) => !isFile(f))
  const failing = failingFiles(first.output)
  const onlyKilled = !first.killedAll && [...failing].every((f) => first.killedFiles.includes(f))
  const retry = first.killedFiles.filter(isFile)
  if (holdersOnly && first.code === 0 && !first.killedAll) {
    // Every test file ended and passed; only a process one of them left running held its
    // output open. That is the test's hygiene, not a failure of what it tested: say it loudly.
    say('WARNING: every test passed, but a process a test left running held the output open (above)')
  } else if (!onlyKilled || retry.length === 0) {
    say(`stuck: ${first.killedFiles.join(', ')}; other failures too, so no second run`)
    process.exitCode = first.code || 1
  } else {
    say(`second run of the files that were stuck: ${retry.join(' ')}`)
    const second = await run(retry)
    const passed = second.code === 0 && second.killedFiles.length === 0
    say(
      passed
        ? `WARNING: ${retry.join(', ')} hung in the first run (see the report above) and passed on its own`
        : `${retry.join(', ')} failed again on its own`,
    )
    process.exitCode = passed ? 0 : second.code || 1
  }
}
