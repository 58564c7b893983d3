#include "bench/procs.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace sluice::bench {

volatile int g_stop = 0;

namespace {

constexpr int kMaxChildren = 8;
volatile pid_t g_pids[kMaxChildren] = {};

void track(pid_t pid) {
  for (auto& p : g_pids)
    if (p == 0) {
      p = pid;
      return;
    }
}
void untrack(pid_t pid) {
  for (auto& p : g_pids)
    if (p == pid) p = 0;
}

void on_signal(int) {
  if (g_stop) {
    // Second signal: no more patience. Only async-signal-safe calls here.
    for (auto& p : g_pids)
      if (p > 0) kill(p, SIGKILL);
    _exit(130);
  }
  g_stop = 1;
}

}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool spawn(Child* c, const std::vector<std::string>& argv, bool want_stdin, std::string* err) {
  // Everything the child needs is prepared before fork: after fork (in a
  // multi-threaded parent) it only makes async-signal-safe calls.
  std::vector<char*> av;
  for (auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  int out = open(c->out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int errfd = open(c->err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int pipefd[2] = {-1, -1};
  if (out < 0 || errfd < 0 || (want_stdin && pipe2(pipefd, O_CLOEXEC) != 0)) {
    *err = c->name + ": cannot open output files: " + std::strerror(errno);
    if (out >= 0) close(out);
    if (errfd >= 0) close(errfd);
    return false;
  }
  int devnull = want_stdin ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &all);
  pid_t pid = fork();
  if (pid < 0) {
    *err = c->name + ": fork: " + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // Our EAL pinned this thread to one core; the child places itself.
    sched_setaffinity(0, sizeof(all), &all);
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    sigaction(SIGPIPE, &sa, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Its own process group: a terminal ^C reaches sluice-bench, which
    // stops the child in order (the child never sees a stray SIGINT).
    setpgid(0, 0);
    dup2(want_stdin ? pipefd[0] : devnull, 0);
    dup2(out, 1);
    dup2(errfd, 2);
    if (close_range(3, ~0u, 0) != 0)
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    execvp(av[0], av.data());
    const char msg[] = "exec failed\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
  }
  track(pid);
  close(out);
  close(errfd);
  if (devnull >= 0) close(devnull);
  if (want_stdin) {
    close(pipefd[0]);
    c->stdin_fd = pipefd[1];
  }
  c->pid = pid;
  return true;
}

bool alive(Child* c) {
  if (c->pid <= 0) return false;
  int st = 0;
  pid_t r = waitpid(c->pid, &st, WNOHANG);
  if (r == 0) return true;
  if (r == c->pid) c->status = st;
  untrack(c->pid);
  c->pid = -1;
  return false;
}

void stop(Child* c, int sig, double timeout_s) {
  if (c->stdin_fd >= 0) {
    close(c->stdin_fd);
    c->stdin_fd = -1;
  }
  if (c->pid <= 0) return;
  if (sig) kill(c->pid, sig);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(int64_t(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (!alive(c)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    int st = 0;
    if (waitpid(c->pid, &st, 0) == c->pid) c->status = st;
    untrack(c->pid);
    c->pid = -1;
  }
}

std::string describe_exit(const Child& c) {
  if (WIFEXITED(c.status)) return "exited with status " + std::to_string(WEXITSTATUS(c.status));
  if (WIFSIGNALED(c.status)) return "killed by signal " + std::to_string(WTERMSIG(c.status));
  return "ended";
}

std::string read_file(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "...\n" + s.substr(s.size() - max_bytes);
  return s;
}

}  // namespace sluice::bench
