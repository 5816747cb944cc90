# Sourced by the fault tests.
# wait_job PID SECONDS: waits up to SECONDS for background job PID to end. Sets `rc` to its exit
# code, or to "" when it is still running.
wait_job() {
  local pid="$1" seconds="$2" i
  rc=""
  for ((i = 0; i < seconds * 10; ++i)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      rc=$?
      return
    fi
    sleep 0.1
  done
}

# The fault tests start their job with `setsid LAUNCHER ... &`: the launcher's PID is then the id of
# a new session that holds the launcher and every rank it starts (Open MPI gives each rank its own
# process group, but the ranks stay in the launcher's session). The helpers below select processes
# by that id only, never by name or command line, so that they end nothing but the job's own
# processes (another run of the same test beside it included).
# job_processes SID: the PIDs of the processes still in session SID, one a line.
job_processes() {
  ps -o pid=,stat= -s "$1" | awk '$2 !~ /^Z/ { print $1 }'
}
# kill_job SID: SIGKILL to every process still in session SID, by PID.
kill_job() {
  local pid
  for pid in $(job_processes "$1"); do kill -9 "$pid" 2>/dev/null; done
}
# check_session PID: fails (with a message) unless background job PID leads its own session,
# i.e. `setsid` did not fork; then the helpers above would see none of the job's processes.
# The job may not have reached its setsid() yet when this runs (a loaded machine): it is given
# up to 2 s to.
check_session() {
  local sid _
  for _ in $(seq 20); do
    sid=$(ps -o sid= -p "$1" 2>/dev/null | tr -d ' ')
    { [ -z "$sid" ] || [ "$sid" = "$1" ]; } && return 0
    sleep 0.1
  done
  if [ -n "$sid" ] && [ "$sid" != "$1" ]; then
    echo "fault test: job $1 is in session $sid, not its own: cannot tell its processes" >&2
    return 1
  fi
}
