// Relay: a native thread that relays eventfd notifications between pairs of fds.
//
// For each pair it epolls the source fd; when readable it reads the count, writes the same
// count to the destination at once, then records {CLOCK_MONOTONIC ns, pair id, count} in a
// single-producer/single-consumer ring that JS drains in batches. JS is never on the
// notification path: a slow event loop delays only the statistics, never a kick or a call.
// Under a flood the counts read after the first of a burst are written together at its end
// (Relay1), at most 32 reads later.
//
// A watched pair (addWatch) is not relayed: the peers keep their own eventfd, and a second
// thread (the observer) only sees each write to it through an io_uring poll (poll_ring.h) and
// records it like a relayed one, off the notification's path.
//
// Pairs are added and removed from JS under a mutex that the thread also holds while it
// handles one epoll batch, so a pair's fds are never closed while the thread uses them, and
// a stale event for a removed pair (its id is in the epoll data) is skipped.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "guest_memory.h"
#include "poll_ring.h"
#include "rings.h"

namespace vhs {
namespace {

struct Event {
  uint64_t ts;
  uint32_t pair;
  uint32_t count;
};

// Transit histograms: bucket i counts transits in [2^i, 2^(i+1)) ns, the last one also longer.
constexpr int kTransitBuckets = 32;

struct Pair {
  int src;
  int dst;            // -1: a watched pair (src is a dup of the peer's eventfd, never read here)
  bool src_blocking;  // a peer's fd without O_NONBLOCK: check readability before read
  uint64_t read_total = 0;
  uint64_t written_total = 0;
  uint64_t notifications = 0;
  uint64_t write_errors = 0;
  uint32_t ring_id = 0;  // 0: no ring watched for this pair
  uint8_t ring_kind = kSnapKick;
  uint64_t transit[kTransitBuckets] = {};  // this pair's share of the relay's transit histogram
  uint64_t transit_sum_ns = 0;
};

// Snapshots waiting for JS beyond this are dropped (and counted): the data path never waits.
constexpr size_t kMaxSnapshotBytes = 16u << 20;

class Relay : public Napi::ObjectWrap<Relay> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Relay",
                       {
                           InstanceMethod("addPair", &Relay::AddPair),
                           InstanceMethod("addWatch", &Relay::AddWatch),
                           InstanceMethod("removePair", &Relay::RemovePair),
                           InstanceMethod("drain", &Relay::Drain),
                           InstanceMethod("pairStats", &Relay::PairStats),
                           InstanceMethod("stats", &Relay::Stats),
                           InstanceMethod("stop", &Relay::Stop),
                           InstanceMethod("setCpu", &Relay::SetCpu),
                           InstanceMethod("setRing", &Relay::SetRing),
                           InstanceMethod("attachRing", &Relay::AttachRing),
                           InstanceMethod("removeRing", &Relay::RemoveRing),
                           InstanceMethod("snapshotRing", &Relay::SnapshotRingNow),
                           InstanceMethod("drainRings", &Relay::DrainRings),
                       });
  }

  // new Relay(ringCapacity, spinNs, nice, cpu, observerRealtime)
  Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
    Napi::Env env = info.Env();
    uint32_t cap = info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : (1u << 16);
    spin_ns_ = info.Length() > 1 ? static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value()) : 0;
    nice_ = info.Length() > 2 ? info[2].As<Napi::Number>().Int32Value() : 0;
    cpu_ = info.Length() > 3 ? info[3].As<Napi::Number>().Int32Value() : -1;
    observer_wants_realtime_ = info.Length() > 4 ? info[4].ToBoolean().Value() : true;
    capacity_ = 1;
    while (capacity_ < cap) capacity_ <<= 1;
    ring_.resize(capacity_);
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd_ < 0 || wake_ < 0) throw ErrnoError(env, "epoll_create1", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeId;
    epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_, &ev);
    thread_ = std::thread([this] { Run(); });
    pthread_getcpuclockid(thread_.native_handle(), &cpu_clock_);
    napi_add_env_cleanup_hook(env, &Relay::CleanupHook, this);  // joins the thread at env teardown
  }

  ~Relay() override {
    Shutdown();
    napi_remove_env_cleanup_hook(Env(), &Relay::CleanupHook, this);
  }

 private:
  // One function for add and remove: the hook is identified by (function, argument).
  static void CleanupHook(void* p) { static_cast<Relay*>(p)->Shutdown(); }

  static constexpr uint64_t kWakeId = ~0ull;

  // addPair(src, dst) -> id. The relay owns both fds from now on.
  Napi::Value AddPair(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int src = info[0].As<Napi::Number>().Int32Value();
    int dst = info[1].As<Napi::Number>().Int32Value();
    int fl = fcntl(src, F_GETFL);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) {
      close(src);
      close(dst);
      throw ErrnoError(env, "relay", ESHUTDOWN);
    }
    uint32_t id = next_id_++;
    Pair p{src, dst, fl >= 0 && !(fl & O_NONBLOCK)};
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = id;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, src, &ev) < 0) {
      int e = errno;
      close(src);
      close(dst);
      throw ErrnoError(env, "epoll_ctl", e);
    }
    pairs_.emplace(id, p);
    return Napi::Number::New(env, id);
  }

  // addWatch(fd) -> id: records every write to fd (a dup of a peer's eventfd, owned by the
  // relay from now on) without reading it. Throws when io_uring is not available here.
  // Returns once the poll is armed (or after kArmWaitMs): the caller forwards the fd next, and a
  // write its consumer reads before the poll exists would not be seen.
  Napi::Value AddWatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    std::unique_lock<std::mutex> lock(mu_);
    int err = stopped_ ? ESHUTDOWN : StartObserver();
    if (err) {
      close(fd);
      throw ErrnoError(env, stopped_ ? "relay" : "io_uring_setup", err);
    }
    uint32_t id = next_id_++;
    pairs_.emplace(id, Pair{fd, -1, false});
    to_arm_.push_back(id);
    WakeObserver();
    const uint64_t wanted = arm_rounds_ + 1;
    armed_.wait_for(lock, std::chrono::milliseconds(kArmWaitMs), [&] { return arm_rounds_ >= wanted || stopped_; });
    return Napi::Number::New(env, id);
  }

  // removePair(id) -> final stats of the pair, or null. Closes both fds.
  Napi::Value RemovePair(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pairs_.find(id);
    if (it == pairs_.end()) return env.Null();
    if (it->second.dst < 0) {
      // a watched pair: the ring keeps its own reference to the file until the poll is removed
      Napi::Object o = PairObject(env, it->second);
      close(it->second.src);
      pairs_.erase(it);
      to_disarm_.push_back(id);
      WakeObserver();
      return o;
    }
    // A notification may be pending that the thread has not picked up yet (the peer signalled
    // and then sent the message that made us remove the pair): relay it before closing.
    Relay1(id, it->second, MonotonicNs());
    Napi::Object o = PairObject(env, it->second);
    epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second.src, nullptr);
    close(it->second.src);
    close(it->second.dst);
    pairs_.erase(it);
    return o;
  }

  // setCpu(cpu, yieldWhileSpinning) -> whether the relay thread now runs only on that CPU (-1:
  // wherever the process may). yieldWhileSpinning: see Run().
  Napi::Value SetCpu(const Napi::CallbackInfo& info) {
    int cpu = info[0].As<Napi::Number>().Int32Value();
    bool yield = info.Length() > 1 && info[1].ToBoolean();
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu >= 0) {
      if (cpu >= CPU_SETSIZE) return Napi::Boolean::New(info.Env(), false);
      CPU_SET(cpu, &set);
    } else if (sched_getaffinity(0, sizeof(set), &set) != 0) {
      return Napi::Boolean::New(info.Env(), false);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || !thread_.joinable()) return Napi::Boolean::New(info.Env(), false);
    bool ok = pthread_setaffinity_np(thread_.native_handle(), sizeof(set), &set) == 0;
    spin_yield_.store(ok && yield, std::memory_order_relaxed);
    return Napi::Boolean::New(info.Env(), ok);
  }

  static uint64_t U64(const Napi::Value& v) {
    bool lossless;
    return v.IsBigInt() ? v.As<Napi::BigInt>().Uint64Value(&lossless)
                        : static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  }

  // setRing(ringId, guestMemory, desc, avail, used, num, packed, headerBytes, lastAvail, lastUsed):
  // where a vring is (front-end virtual addresses) and from which index on to report.
  Napi::Value SetRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto mem = UnwrapGuestMemory(info[1]);
    if (!mem) throw Napi::TypeError::New(env, "setRing: not a GuestMemory");
    auto r = std::make_shared<RingState>();
    r->mem = mem;
    r->desc = U64(info[2]);
    r->avail = U64(info[3]);
    r->used = U64(info[4]);
    r->num = static_cast<uint16_t>(info[5].As<Napi::Number>().Uint32Value());
    r->packed = info[6].ToBoolean();
    r->header_bytes = static_cast<uint16_t>(std::min(1024u, info[7].As<Napi::Number>().Uint32Value()));
    r->last_avail = static_cast<uint16_t>(info[8].As<Napi::Number>().Uint32Value());
    r->last_used = static_cast<uint16_t>(info[9].As<Napi::Number>().Uint32Value());
    std::lock_guard<std::mutex> lock(mu_);
    rings_[info[0].As<Napi::Number>().Uint32Value()] = r;
    return env.Undefined();
  }

  // attachRing(pairId, ringId, kind): snapshot the ring whenever this pair relays (kind 0 kick, 1 call)
  Napi::Value AttachRing(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pairs_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == pairs_.end()) return Napi::Boolean::New(info.Env(), false);
    it->second.ring_id = info[1].As<Napi::Number>().Uint32Value();
    it->second.ring_kind = static_cast<uint8_t>(info[2].As<Napi::Number>().Uint32Value());
    return Napi::Boolean::New(info.Env(), true);
  }

  Napi::Value RemoveRing(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(mu_);
    rings_.erase(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }

  // snapshotRing(ringId) -> one record of kind "base" (indices now), or null
  Napi::Value SnapshotRingNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint8_t> out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = rings_.find(info[0].As<Napi::Number>().Uint32Value());
      if (it == rings_.end()) return env.Null();
      SnapshotRing(*it->second, kSnapBase, MonotonicNs(), 0, it->first, out);
    }
    return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
  }

  // drainRings(into) -> bytes of whole snapshot records copied into `into`, oldest first (0: none
  // left); -N when the next record alone needs N bytes (the caller grows `into` and calls again).
  // JS passes the same buffer every time and the two vectors swap, keeping their capacity: a
  // steady stream of snapshots allocates nothing, where a fresh buffer per drain fragmented the
  // heap over hours (the soak's RSS).
  Napi::Value DrainRings(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "drainRings(into: Buffer)");
    Napi::Buffer<uint8_t> into = info[0].As<Napi::Buffer<uint8_t>>();
    if (drained_off_ >= drained_.size()) {
      drained_.clear();
      drained_off_ = 0;
      std::lock_guard<std::mutex> lock(mu_);
      drained_.swap(snapshots_);
    }
    size_t copied = 0;
    while (drained_off_ + 4 <= drained_.size()) {
      uint32_t len;
      memcpy(&len, drained_.data() + drained_off_, 4);
      if (copied + len > into.Length()) {
        if (copied == 0) return Napi::Number::New(env, -static_cast<double>(len));
        break;
      }
      memcpy(into.Data() + copied, drained_.data() + drained_off_, len);
      copied += len;
      drained_off_ += len;
    }
    return Napi::Number::New(env, static_cast<double>(copied));
  }

  Napi::Object PairObject(Napi::Env env, const Pair& p) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("read", Napi::Number::New(env, static_cast<double>(p.read_total)));
    o.Set("written", Napi::Number::New(env, static_cast<double>(p.written_total)));
    o.Set("notifications", Napi::Number::New(env, static_cast<double>(p.notifications)));
    o.Set("writeErrors", Napi::Number::New(env, static_cast<double>(p.write_errors)));
    Napi::Array transit = Napi::Array::New(env, kTransitBuckets);
    for (int i = 0; i < kTransitBuckets; i++) transit.Set(i, Napi::Number::New(env, static_cast<double>(p.transit[i])));
    o.Set("transitBuckets", transit);
    o.Set("transitSumNs", Napi::Number::New(env, static_cast<double>(p.transit_sum_ns)));
    return o;
  }

  Napi::Value PairStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pairs_.find(info[0].As<Napi::Number>().Uint32Value());
    if (it == pairs_.end()) return env.Null();
    return PairObject(env, it->second);
  }

  // drain(into) -> how many 16-byte events {u64 ts, u32 pair, u32 count} were copied into `into`,
  // oldest first; as many as fit (a full buffer: call again). No allocation: see DrainRings.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "drain(into: Buffer)");
    Napi::Buffer<uint8_t> into = info[0].As<Napi::Buffer<uint8_t>>();
    uint64_t tail = tail_.load(std::memory_order_relaxed);
    uint64_t head = head_.load(std::memory_order_acquire);
    size_t n = std::min(static_cast<size_t>(head - tail), into.Length() / sizeof(Event));
    for (size_t i = 0; i < n; i++) {
      memcpy(into.Data() + i * sizeof(Event), &ring_[(tail + i) & (capacity_ - 1)], sizeof(Event));
    }
    tail_.store(tail + n, std::memory_order_release);
    return Napi::Number::New(env, static_cast<double>(n));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    struct timespec ts {};
    double cpu_ns = 0;
    if (!stopped_ && clock_gettime(cpu_clock_, &ts) == 0) cpu_ns = ts.tv_sec * 1e9 + ts.tv_nsec;
    o.Set("threadCpuNs", Napi::Number::New(env, cpu_ns));
    o.Set("notifications", Napi::Number::New(env, static_cast<double>(relayed_.load())));
    o.Set("droppedEvents", Napi::Number::New(env, static_cast<double>(dropped_.load())));
    o.Set("niceApplied", Napi::Boolean::New(env, nice_applied_.load()));
    o.Set("droppedSnapshots", Napi::Number::New(env, static_cast<double>(dropped_snapshots_.load())));
    o.Set("observerRealtime", Napi::Boolean::New(env, observer_realtime_.load()));
    Napi::Array transit = Napi::Array::New(env, kTransitBuckets);
    for (int i = 0; i < kTransitBuckets; i++)
      transit.Set(i, Napi::Number::New(env, static_cast<double>(transit_[i].load())));
    o.Set("transitBuckets", transit);
    o.Set("transitSumNs", Napi::Number::New(env, static_cast<double>(transit_sum_ns_.load())));
    std::lock_guard<std::mutex> lock(mu_);
    o.Set("pairs", Napi::Number::New(env, static_cast<double>(pairs_.size())));
    return o;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    armed_.notify_all();
    uint64_t one = 1;
    if (write(wake_, &one, 8) < 0) { /* the thread also checks stopped_ */
    }
    if (thread_.joinable()) thread_.join();
    WakeObserver();
    if (observer_.joinable()) observer_.join();
    poll_ring_.reset();
    if (observer_wake_ >= 0) close(observer_wake_);
    for (auto& kv : pairs_) {
      close(kv.second.src);
      if (kv.second.dst >= 0) close(kv.second.dst);
    }
    pairs_.clear();
    rings_.clear();
    close(epfd_);
    close(wake_);
  }

  void Push(uint64_t ts, uint32_t pair, uint64_t count) {
    uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) >= capacity_) {
      dropped_.fetch_add(1, std::memory_order_relaxed);  // the record is lost, the notification was not
      return;
    }
    ring_[head & (capacity_ - 1)] = Event{ts, pair, count > 0xffffffffull ? 0xffffffffu : static_cast<uint32_t>(count)};
    head_.store(head + 1, std::memory_order_release);
  }

  // After activity the thread polls without sleeping for spin_ns_: waking a sleeping thread
  // costs tens of µs on a virtual CPU, and notifications come in bursts (a kick, then its call).
  // When the relay shares its CPU with the peers it wakes (spin_yield_, set with setCpu), it
  // yields between polls: a peer it has just woken does not preempt a spinning thread, and
  // would otherwise wait for the spin to end (measured: 1 round trip in 10 took ~65 µs instead
  // of ~16). Next to a busy thread (a polling backend) it must not: a yielding thread is still
  // runnable, so it loses the wake-up preemption that gets it the CPU back at once.
  void Run() {
    pthread_setname_np(pthread_self(), "vhs-relay");  // as top -H and the benches name it
    // A nicer-than-default relay thread gets the CPU back quickly from busy peers (a polling
    // backend, a TCG vCPU); without the privilege for it the thread keeps its priority.
    if (nice_ != 0) nice_applied_ = setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice_) == 0;
    if (cpu_ >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu_, &set);
      pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    epoll_event events[64];
    uint64_t spin_until = 0;
    for (;;) {
      int n;
      if (spin_until != 0 && MonotonicNs() < spin_until) {
        n = epoll_wait(epfd_, events, 64, 0);
        if (n == 0) {
          if (spin_yield_.load(std::memory_order_relaxed)) sched_yield();
          continue;
        }
      } else {
        spin_until = 0;
        n = epoll_wait(epfd_, events, 64, -1);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      const uint64_t woke = MonotonicNs();
      if (spin_ns_) spin_until = woke + spin_ns_;
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      for (int i = 0; i < n; i++) {
        uint64_t id = events[i].data.u64;
        if (id == kWakeId) continue;
        auto it = pairs_.find(static_cast<uint32_t>(id));
        if (it == pairs_.end()) continue;  // removed since epoll_wait returned
        Relay1(static_cast<uint32_t>(id), it->second, woke);
      }
    }
  }

  // Relays the pending count of a pair, if any. Called with mu_ held. The first count read is
  // written at once: that is the latency path. A non-blocking source is then read again right
  // away while it keeps delivering (a flood, up to kRereads reads), and what those reads pick up
  // is written together every kFlushEvery reads and at the end: the destination's eventfd is the
  // one the consumer contends on, and a write that wakes it costs more than the reads. Measured
  // here (bench/notify.js part 2, syscalls ~1.2 µs on this VM): bursts of 16 reads picked up
  // 0.88x what a direct consumer wakes up for, since every burst also paid an epoll_wait and a
  // failed read; 64 with a write every 32 picks up 1.0-1.2x, a count waiting at most 32 reads.
  // Each pick-up is recorded with its own timestamp.
  void Relay1(uint32_t id, Pair& p, uint64_t woke) {
    if (p.src_blocking) {
      pollfd pfd{p.src, POLLIN, 0};
      if (poll(&pfd, 1, 0) != 1) return;  // the peer read it first; never block here
    }
    uint64_t pending = 0;
    for (int i = 0; i < (p.src_blocking ? 1 : kRereads); i++) {
      uint64_t count = 0;
      if (read(p.src, &count, 8) != 8) break;
      // the pick-up time, taken before forwarding: the write may wake the destination on this
      // CPU and let it run (and answer) before this thread goes on
      const uint64_t ts = MonotonicNs();
      if (i == 0) {
        RecordTransit(p, ts - woke);
        Deliver(p, count);  // forward first, then account
      } else {
        pending += count;
        // a long flood: what was picked up goes out every kFlushEvery reads, not only at its end
        if (i % kFlushEvery == 0) {
          Deliver(p, pending);
          pending = 0;
        }
      }
      p.read_total += count;
      p.notifications++;
      relayed_.fetch_add(1, std::memory_order_relaxed);
      Push(ts, id, count);
      if (p.ring_id) Snapshot(id, p, ts);
    }
    if (pending) Deliver(p, pending);
  }

  static void Deliver(Pair& p, uint64_t count) {
    if (write(p.dst, &count, 8) == 8)
      p.written_total += count;
    else
      p.write_errors++;
  }

  // After the notification went through: what was on the ring (--rings), stamped with the
  // pick-up time (its used index may already show what the destination did since). mu_ held.
  void Snapshot(uint32_t id, Pair& p, uint64_t ts) {
    auto it = rings_.find(p.ring_id);
    if (it == rings_.end()) return;
    if (snapshots_.size() > kMaxSnapshotBytes) {
      dropped_snapshots_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    SnapshotRing(*it->second, p.ring_kind, ts, id, p.ring_id, snapshots_);
  }

  // Transit: from the thread's wake-up (epoll_wait returning) to the count read, the write
  // issued next, in power-of-two ns buckets. It leaves out the scheduler's wake-up latency, which
  // no thread can time from inside, and the write: on a shared CPU the peer it wakes may preempt
  // the relay inside write() and run its whole request (measured: a blk kick's "transit" was
  // qemu-storage-daemon's 250 µs of service). bench/notify.js measures the whole hop.
  // Kept per pair too (mu_ is held), so a session's recording carries its own vrings' figures.
  void RecordTransit(Pair& p, uint64_t ns) {
    int b = ns == 0 ? 0 : 63 - __builtin_clzll(ns);
    if (b >= kTransitBuckets) b = kTransitBuckets - 1;
    transit_[b].fetch_add(1, std::memory_order_relaxed);
    transit_sum_ns_.fetch_add(ns, std::memory_order_relaxed);
    p.transit[b]++;
    p.transit_sum_ns += ns;
  }

  // The observer thread and its ring, started with the first watched pair. mu_ held. Returns 0
  // or the errno of a ring this kernel refused (io_uring disabled, too old).
  int StartObserver() {
    if (poll_ring_) return poll_ring_->ok() ? 0 : poll_ring_->error();
    poll_ring_ = std::make_unique<PollRing>(256);
    if (!poll_ring_->ok()) return poll_ring_->error();
    observer_wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (observer_wake_ < 0) return errno;
    observer_ = std::thread([this] { Observe(); });
    return 0;
  }

  void WakeObserver() {
    uint64_t one = 1;
    if (observer_wake_ >= 0 && write(observer_wake_, &one, 8) < 0) { /* a wake-up is pending already */
    }
  }

  // The observer thread: arms and disarms the polls (the kernel completes a poll as task work
  // of the thread that armed it, so this one does all of it) and records each readiness. It
  // never touches a peer's count: the peers' own eventfds carry the notification.
  void Observe() {
    pthread_setname_np(pthread_self(), "vhs-observe");
    // The stamp of a notification is when this thread runs after it: at the lowest real-time
    // priority it runs at once, ahead of the peer it woke too, instead of after it (an
    // observer that runs second stamps a kick after the back-end has taken it). It only stamps
    // and copies, then sleeps again. Without the privilege it keeps its normal priority. Busy
    // more than a quarter of a kRealtimeWindowNs window (a peer flooding its eventfd: thousands of
    // wake-ups), it gives the priority up for good: a peer must not buy real-time CPU with writes.
    sched_param rt{};
    rt.sched_priority = 1;
    observer_realtime_ = observer_wants_realtime_ && pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) == 0;
    if (!observer_realtime_ && nice_ != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice_);
    PollRing& ring = *poll_ring_;
    ring.Arm(observer_wake_, kWakeId);
    uint64_t window_start = MonotonicNs(), window_cpu = ThreadCpuNs();
    for (;;) {
      if (!ring.SubmitAndWait()) return;
      const uint64_t ts = MonotonicNs();
      if (observer_realtime_.load(std::memory_order_relaxed) && ts - window_start > kRealtimeWindowNs) {
        const uint64_t cpu = ThreadCpuNs();
        if ((cpu - window_cpu) * 4 > ts - window_start) {
          sched_param normal{};
          pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
          observer_realtime_ = false;
        }
        window_start = ts;
        window_cpu = cpu;
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      ring.Reap([&](uint64_t tag, int res, bool more) {
        if (tag == kWakeId) {
          uint64_t n;
          while (read(observer_wake_, &n, 8) == 8) {
          }
          if (!more) ring.Arm(observer_wake_, kWakeId);
          return;
        }
        auto it = pairs_.find(static_cast<uint32_t>(tag));
        if (it == pairs_.end() || it->second.dst >= 0) return;  // removed since
        if (res <= 0) {
          it->second.write_errors++;  // the poll failed: this pair is no longer observed
          return;
        }
        Pair& p = it->second;
        p.notifications++;
        relayed_.fetch_add(1, std::memory_order_relaxed);
        Push(ts, it->first, 1);
        if (p.ring_id) Snapshot(it->first, p, ts);
        if (!more) ring.Arm(p.src, tag);  // the kernel ended the multishot poll (a full CQ)
      });
      size_t armed = 0;
      for (; armed < to_arm_.size(); armed++) {
        auto it = pairs_.find(to_arm_[armed]);
        if (it != pairs_.end() && !ring.Arm(it->second.src, it->first)) break;
      }
      to_arm_.erase(to_arm_.begin(), to_arm_.begin() + static_cast<long>(armed));
      if (!to_arm_.empty()) WakeObserver();  // the submission queue is full: the rest after this submit
      if (armed && to_arm_.empty() && ring.Submit()) {
        arm_rounds_++;
        armed_.notify_all();
      }
      while (!to_disarm_.empty() && ring.Disarm(to_disarm_.back())) to_disarm_.pop_back();
    }
  }

  static constexpr int kRereads = 64;
  static constexpr int kFlushEvery = 32;
  std::atomic<uint64_t> transit_[kTransitBuckets]{};
  std::atomic<uint64_t> transit_sum_ns_{0};

  int epfd_ = -1;
  int wake_ = -1;
  uint64_t spin_ns_ = 0;
  int nice_ = 0;
  int cpu_ = -1;  // pin the relay thread to this CPU (-1: let the scheduler choose)
  std::atomic<bool> nice_applied_{false};
  std::atomic<bool> spin_yield_{false};
  std::thread thread_;
  clockid_t cpu_clock_{};
  std::mutex mu_;
  bool stopped_ = false;
  std::unordered_map<uint32_t, Pair> pairs_;
  std::unique_ptr<PollRing> poll_ring_;
  std::thread observer_;
  int observer_wake_ = -1;
  bool observer_wants_realtime_ = true;
  std::atomic<bool> observer_realtime_{false};
  static constexpr uint64_t kRealtimeWindowNs = 100'000'000;
  static uint64_t ThreadCpuNs() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(t.tv_nsec);
  }
  std::condition_variable armed_;  // the observer submitted every poll queued so far
  uint64_t arm_rounds_ = 0;
  static constexpr int kArmWaitMs = 1000;
  std::vector<uint32_t> to_arm_;     // watched pairs the observer has not armed yet
  std::vector<uint32_t> to_disarm_;  // removed watched pairs whose polls are still armed
  uint32_t next_id_ = 1;
  std::vector<Event> ring_;
  uint64_t capacity_ = 0;
  std::atomic<uint64_t> head_{0};
  std::atomic<uint64_t> tail_{0};
  std::atomic<uint64_t> relayed_{0};
  std::atomic<uint64_t> dropped_{0};
  std::unordered_map<uint32_t, std::shared_ptr<RingState>> rings_;
  std::vector<uint8_t> snapshots_;
  // what the last swap took from snapshots_ and JS has not copied out yet (JS thread only)
  std::vector<uint8_t> drained_;
  size_t drained_off_ = 0;
  std::atomic<uint64_t> dropped_snapshots_{0};
};

}  // namespace

void InitRelay(Napi::Env env, Napi::Object exports) { exports.Set("Relay", Relay::Define(env)); }

}  // namespace vhs
