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
