// How the children of a gloo communicator come to be: Split (every rank's color and key, then the
// groups' addresses, allgathered over the parent) and SplitAgreed by member lists (the members
// alone exchange addresses over the parent's connections), each child's group connected on the
// parent's device (ConnectChild); and ConfirmConnections, which a world's rendezvous uses too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gloo/allgather.h"
#include "gloo/allgatherv.h"
#include "gloo/alltoall.h"
#include "gloo/context.h"
#include "gloo/transport/tcp/address.h"
#include "gloo/transport/tcp/device.h"
#include "gloo/transport/unbound_buffer.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/gloo/gloo_communicator.h"
#include "nmesh/comm/gloo/loop_ticker.h"
#include "nmesh/comm/gloo/operations.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/store_side_channel.h"

namespace nmesh::comm::gloo {

// One byte over every connection of `context`, both ways: gloo's connect returns on one side of a
// connection before the other side has finished its handshake, and a rank that closed its
// context at once (a communicator created and destroyed) would break the handshake of a peer
// still connecting. After this, every connection is complete on both sides.
void ConfirmConnections(const std::shared_ptr<::gloo::Context>& context, Millis timeout) {
  if (context->size == 1) return;
  std::vector<uint8_t> out(static_cast<size_t>(context->size), 1), in(out.size(), 0);
  ::gloo::AlltoallOptions opts(context);
  opts.setInput<uint8_t>(out.data(), out.size());
  opts.setOutput<uint8_t>(in.data(), in.size());
  opts.setTimeout(timeout);
  ::gloo::alltoall(opts);
}

namespace {

namespace ci = ::nmesh::comm::internal;

// A split's child: connects `transport`'s pair with every other member i (of `group_size`, this
// rank being `group_rank`) to the address `address_of(i)`, confirms the connections and wraps the
// group in a communicator with `options`. Throws what gloo throws.
std::unique_ptr<Communicator> ConnectChild(const std::shared_ptr<::gloo::transport::Device>& device,
                                           std::shared_ptr<::gloo::transport::Context> transport,
                                           int group_rank, int group_size,
                                           const std::function<const char*(int)>& address_of,
                                           size_t address_bytes, Millis timeout,
                                           std::shared_ptr<LoopTicker> ticker, CommOptions options,
                                           WatchSetup watch) {
  FastTicks fast(ticker);
  for (int i = 0; i < group_size; ++i) {
    if (i == group_rank) continue;
    const char* at = address_of(i);
    transport->getPair(i)->connect(std::vector<char>(at, at + address_bytes));
  }
  auto group = std::make_shared<GroupContext>(group_rank, group_size);
  group->Attach(device, std::move(transport));
  ConfirmConnections(group, timeout);
  group->setTimeout(GlooTimeout(options.timeout));
  return std::make_unique<GlooCommunicator>(std::move(group), std::move(options), std::move(ticker),
                                            std::move(watch));
}

}  // namespace

WatchSetup GlooCommunicator::ChildWatch(std::string_view how, int64_t number, int64_t color,
                                        const std::vector<int>& members) const {
  if (watch_.hub == nullptr) return {};
  WatchSetup child{watch_.hub, ci::StoreChannelId(watch_.id, how, number, color), {}};
  for (int m : members) child.global.push_back(watch_.global[static_cast<size_t>(m)]);
  return child;
}

absl::StatusOr<std::vector<char>> GlooCommunicator::PairAddress(
    ::gloo::transport::Context& transport, int peer, size_t address_bytes) const {
  std::vector<char> address = transport.createPair(peer)->address().bytes();
  if (address.size() != address_bytes) {
    return absl::InternalError(absl::StrFormat("%s: gloo address of %d bytes, expected %d",
                                               ci::OpContext(*this, OpKind::kSplit), address.size(),
                                               address_bytes));
  }
  return address;
}

absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::DoSplit(std::optional<int> color,
                                                                        int key,
                                                                        CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  auto* device = dynamic_cast<::gloo::transport::tcp::Device*>(context_->getDevice().get());
  if (device == nullptr) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: splitting a gloo context needs gloo's TCP transport (rank %d of %d)",
                        ci::OpContext(*this, OpKind::kSplit), rank_, size_));
  }
  std::unique_ptr<Communicator> child;
  const int64_t split_number = ++splits_;
  absl::Status status = RunExclusive([&]() -> absl::Status {
    if (absl::Status s = abort_state_.Check(*this, OpKind::kSplit); !s.ok()) return s;
    const Millis timeout = GlooTimeout(options_.timeout);
    const absl::Time start = absl::Now();
    const size_t n = static_cast<size_t>(size_);
    try {
      // 1. Every rank's color and key.
      int64_t mine[3] = {color.has_value() ? 1 : 0, color.value_or(0), key};
      std::vector<int64_t> all(3 * n);
      {
        ::gloo::AllgatherOptions opts(context_);
        opts.setInput<int64_t>(mine, 3);
        opts.setOutput<int64_t>(all.data(), all.size());
        opts.setTimeout(timeout);
        ::gloo::allgather(opts);
      }
      std::vector<std::string> bad;
      for (size_t r = 0; r < n; ++r) {
        if (all[3 * r] != 0 && all[3 * r + 1] < 0) {
          bad.push_back(absl::StrFormat("rank %d passed %d", r, all[3 * r + 1]));
        }
      }
      if (!bad.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: colors must be non-negative or absent; %s (rank %d of %d)",
            ci::OpContext(*this, OpKind::kSplit), absl::StrJoin(bad, ", "), rank_, size_));
      }
      // 2. The groups: members ordered by key, then rank.
      auto members_of = [&](int64_t c) {
        std::vector<int> members;
        for (size_t r = 0; r < n; ++r) {
          if (all[3 * r] != 0 && all[3 * r + 1] == c) members.push_back(static_cast<int>(r));
        }
        std::stable_sort(members.begin(), members.end(),
                         [&](int a, int b) { return all[3 * a + 2] < all[3 * b + 2]; });
        return members;
      };
      const size_t address_bytes = ::gloo::transport::tcp::Address().bytes().size();
      std::vector<size_t> blob_bytes(n, 0);
      for (size_t r = 0; r < n; ++r) {
        if (all[3 * r] == 0) continue;
        const size_t group = members_of(all[3 * r + 1]).size();
        blob_bytes[r] = (group - 1) * address_bytes;
      }
      // 3. This rank's group context and the addresses of its pairs, one per other member.
      std::vector<int> members;
      int group_rank = -1;
      std::shared_ptr<::gloo::transport::Context> transport;
      std::vector<char> blob;
      if (color) {
        members = members_of(*color);
        group_rank =
            static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
        const int group_size = static_cast<int>(members.size());
        transport = context_->getDevice()->createContext(group_rank, group_size);
        transport->setTimeout(timeout);
        for (int i = 0; i < group_size; ++i) {
          if (i == group_rank) continue;
          NMESH_ASSIGN_OR_RETURN(std::vector<char> address,
                                 PairAddress(*transport, i, address_bytes));
          blob.insert(blob.end(), address.begin(), address.end());
        }
      }
      // 4. Every rank's addresses, through this communicator.
      size_t total = 0;
      std::vector<size_t> offsets(n);
      for (size_t r = 0; r < n; ++r) {
        offsets[r] = total;
        total += blob_bytes[r];
      }
      std::vector<char> addresses(total);
      if (total > 0) {
        static char empty = 0;
        ::gloo::AllgathervOptions opts(context_);
        opts.setInput<char>(blob.empty() ? &empty : blob.data(), blob.size());
        opts.setOutput<char>(addresses.data(), blob_bytes);
        opts.setTimeout(timeout);
        ::gloo::allgatherv(opts);
      }
      if (!color) return absl::OkStatus();
      // 5. Connect: member i's entry for this rank is at index group_rank (less one past i).
      child = ConnectChild(
          context_->getDevice(), std::move(transport), group_rank, static_cast<int>(members.size()),
          [&](int i) {
            const size_t index = static_cast<size_t>(group_rank < i ? group_rank : group_rank - 1);
            return addresses.data() + offsets[static_cast<size_t>(members[i])] +
                   index * address_bytes;
          },
          address_bytes, timeout, ticker_, std::move(options),
          ChildWatch("split", split_number, *color, members));
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(OpKind::kSplit, e.what(), options_.timeout, start);
    }
  });
  NMESH_RETURN_IF_ERROR(status);
  return child;
}

// The members alone meet: each sends every other member, over this communicator's connections,
// the address of its pair for that member (one slot of its own, so that the exchanges of
// successive splits between two ranks match in order), and nobody else takes part.
absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::DoSplitAgreedMembers(
    absl::Span<const int> members, CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  if (members.empty()) return std::unique_ptr<Communicator>();
  if (dynamic_cast<::gloo::transport::tcp::Device*>(context_->getDevice().get()) == nullptr) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: splitting a gloo context needs gloo's TCP transport (rank %d of %d)",
                        ci::OpContext(*this, OpKind::kSplit), rank_, size_));
  }
  std::unique_ptr<Communicator> child;
  Fingerprint group;
  for (int m : members) group.Add(int64_t{m});
  const int64_t split_number = ++member_splits_[group.value()];
  absl::Status status = RunExclusive([&]() -> absl::Status {
    if (absl::Status s = abort_state_.Check(*this, OpKind::kSplit); !s.ok()) return s;
    const Millis timeout = GlooTimeout(options_.timeout);
    const absl::Time start = absl::Now();
    try {
      const int group_size = static_cast<int>(members.size());
      const int group_rank =
          static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
      std::shared_ptr<::gloo::transport::Context> transport =
          context_->getDevice()->createContext(group_rank, group_size);
      transport->setTimeout(timeout);
      const size_t address_bytes = ::gloo::transport::tcp::Address().bytes().size();
      const size_t n = static_cast<size_t>(group_size);
      std::vector<char> mine(n * address_bytes), theirs(n * address_bytes);
      for (int i = 0; i < group_size; ++i) {
        if (i == group_rank) continue;
        NMESH_ASSIGN_OR_RETURN(std::vector<char> address,
                               PairAddress(*transport, i, address_bytes));
        std::copy(address.begin(), address.end(), mine.begin() + i * address_bytes);
      }
      if (group_size > 1) {
        const uint64_t slot = SplitSlot();
        auto out = context_->createUnboundBuffer(theirs.data(), theirs.size());
        auto in = context_->createUnboundBuffer(mine.data(), mine.size());
        for (int i = 0; i < group_size; ++i) {
          if (i != group_rank) out->recv(members[i], slot, i * address_bytes, address_bytes);
        }
        for (int i = 0; i < group_size; ++i) {
          if (i != group_rank) in->send(members[i], slot, i * address_bytes, address_bytes);
        }
        for (int i = 1; i < group_size; ++i) out->waitRecv(timeout);
        for (int i = 1; i < group_size; ++i) in->waitSend(timeout);
      }
      child = ConnectChild(
          context_->getDevice(), std::move(transport), group_rank, group_size,
          [&](int i) { return theirs.data() + static_cast<size_t>(i) * address_bytes; },
          address_bytes, timeout, ticker_, std::move(options),
          ChildWatch("members", split_number, static_cast<int64_t>(group.value()),
                     std::vector<int>(members.begin(), members.end())));
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(OpKind::kSplit, e.what(), options_.timeout, start);
    }
  });
  NMESH_RETURN_IF_ERROR(status);
  return child;
}

namespace {

// Every pair of `contexts` (freshly connected groups) carries one byte each way, all at once:
// one round for all of them, where ConfirmConnections takes one per context.
void ConfirmAllConnections(const std::vector<std::shared_ptr<::gloo::Context>>& contexts,
                           Millis timeout) {
  std::vector<std::vector<uint8_t>> outs, ins;
  std::vector<std::unique_ptr<::gloo::transport::UnboundBuffer>> sends, recvs;
  for (const std::shared_ptr<::gloo::Context>& context : contexts) {
    if (context->size == 1) continue;
    outs.emplace_back(static_cast<size_t>(context->size), 1);
    ins.emplace_back(static_cast<size_t>(context->size), 0);
    sends.push_back(context->createUnboundBuffer(outs.back().data(), outs.back().size()));
    recvs.push_back(context->createUnboundBuffer(ins.back().data(), ins.back().size()));
    for (int p = 0; p < context->size; ++p) {
      if (p == context->rank) continue;
      recvs.back()->recv(p, SplitSlot(), static_cast<size_t>(p), 1);
      sends.back()->send(p, SplitSlot(), static_cast<size_t>(p), 1);
    }
  }
  for (size_t i = 0; i < recvs.size(); ++i) {
    for (size_t p = 1; p < ins[i].size(); ++p) recvs[i]->waitRecv(timeout);
    for (size_t p = 1; p < outs[i].size(); ++p) sends[i]->waitSend(timeout);
  }
}

}  // namespace

// The splits together: every group's transport and pairs first; then one message with each peer
// (over this communicator's connections, the split slot) holding this rank's pair addresses for
// that peer in every group they share, in split order; then every pair connects (one round of
// gloo loop turns for all, comm/gloo/loop_ticker.h) and one round of bytes confirms them all.
absl::StatusOr<std::vector<std::unique_ptr<Communicator>>> GlooCommunicator::DoSplitAgreedMany(
    absl::Span<const AgreedSplit> splits) {
  for (const AgreedSplit& split : splits) {
    NMESH_RETURN_IF_ERROR(CheckTimeout(split.options.timeout, "CommOptions.timeout"));
  }
  if (dynamic_cast<::gloo::transport::tcp::Device*>(context_->getDevice().get()) == nullptr) {
    return absl::UnimplementedError(
        absl::StrFormat("%s: splitting a gloo context needs gloo's TCP transport (rank %d of %d)",
                        ci::OpContext(*this, OpKind::kSplit), rank_, size_));
  }
  // Each group's number among the splits of the same members (as DoSplitAgreedMembers counts).
  std::vector<int64_t> numbers(splits.size(), 0);
  std::vector<uint64_t> fingerprints(splits.size(), 0);
  for (size_t i = 0; i < splits.size(); ++i) {
    if (splits[i].members.empty()) continue;
    Fingerprint group;
    for (int m : splits[i].members) group.Add(int64_t{m});
    fingerprints[i] = group.value();
    numbers[i] = ++member_splits_[group.value()];
  }
  std::vector<std::unique_ptr<Communicator>> made(splits.size());
  absl::Status status = RunExclusive([&]() -> absl::Status {
    if (absl::Status s = abort_state_.Check(*this, OpKind::kSplit); !s.ok()) return s;
    const Millis timeout = GlooTimeout(options_.timeout);
    const absl::Time start = absl::Now();
    try {
      const size_t address_bytes = ::gloo::transport::tcp::Address().bytes().size();
      struct Part {
        int group_rank = -1;
        std::shared_ptr<::gloo::transport::Context> transport;
        std::vector<char> theirs;  // member j's address of its pair for this rank, at j
      };
      std::vector<Part> parts(splits.size());
      // Peer (rank of this communicator) -> the (split, member index) pairs shared with it, in
      // split order, and this rank's addresses for it, concatenated in the same order.
      std::map<int, std::vector<std::pair<size_t, int>>> shared_with;
      std::map<int, std::vector<char>> mine;
      for (size_t i = 0; i < splits.size(); ++i) {
        const std::vector<int>& members = splits[i].members;
        if (members.empty()) continue;
        const int group_size = static_cast<int>(members.size());
        Part& part = parts[i];
        part.group_rank =
            static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
        part.transport = context_->getDevice()->createContext(part.group_rank, group_size);
        part.transport->setTimeout(timeout);
        part.theirs.resize(members.size() * address_bytes);
        for (int j = 0; j < group_size; ++j) {
          if (j == part.group_rank) continue;
          NMESH_ASSIGN_OR_RETURN(std::vector<char> address,
                                 PairAddress(*part.transport, j, address_bytes));
          const int peer = members[static_cast<size_t>(j)];
          shared_with[peer].push_back({i, j});
          std::vector<char>& out = mine[peer];
          out.insert(out.end(), address.begin(), address.end());
        }
      }
      // The exchange: one receive and one send per peer, all posted, then waited for.
      std::map<int, std::vector<char>> theirs;
      std::vector<std::unique_ptr<::gloo::transport::UnboundBuffer>> recvs, sends;
      for (auto& [peer, list] : shared_with) {
        std::vector<char>& in = theirs[peer];
        in.resize(list.size() * address_bytes);
        recvs.push_back(context_->createUnboundBuffer(in.data(), in.size()));
        recvs.back()->recv(peer, SplitSlot(), 0, in.size());
      }
      for (auto& [peer, out] : mine) {
        sends.push_back(context_->createUnboundBuffer(out.data(), out.size()));
        sends.back()->send(peer, SplitSlot(), 0, out.size());
      }
      for (auto& recv : recvs) recv->waitRecv(timeout);
      for (auto& send : sends) send->waitSend(timeout);
      for (auto& [peer, list] : shared_with) {
        const std::vector<char>& in = theirs[peer];
        for (size_t n = 0; n < list.size(); ++n) {
          const auto [i, j] = list[n];
          std::copy(in.begin() + static_cast<std::ptrdiff_t>(n * address_bytes),
                    in.begin() + static_cast<std::ptrdiff_t>((n + 1) * address_bytes),
                    parts[i].theirs.begin() + static_cast<std::ptrdiff_t>(j * address_bytes));
        }
      }
      // Connect every pair of every group, then confirm them all in one round.
      std::vector<std::shared_ptr<::gloo::Context>> groups(splits.size());
      std::vector<std::shared_ptr<::gloo::Context>> connected;
      {
        FastTicks fast(ticker_);
        for (size_t i = 0; i < splits.size(); ++i) {
          Part& part = parts[i];
          if (part.transport == nullptr) continue;
          const int group_size = static_cast<int>(splits[i].members.size());
          for (int j = 0; j < group_size; ++j) {
            if (j == part.group_rank) continue;
            const char* at = part.theirs.data() + static_cast<size_t>(j) * address_bytes;
            part.transport->getPair(j)->connect(std::vector<char>(at, at + address_bytes));
          }
          auto group = std::make_shared<GroupContext>(part.group_rank, group_size);
          group->Attach(context_->getDevice(), std::move(part.transport));
          groups[i] = group;
          connected.push_back(group);
        }
        ConfirmAllConnections(connected, timeout);
      }
      for (size_t i = 0; i < splits.size(); ++i) {
        if (groups[i] == nullptr) continue;
        groups[i]->setTimeout(GlooTimeout(splits[i].options.timeout));
        made[i] = std::make_unique<GlooCommunicator>(
            std::move(groups[i]), splits[i].options, ticker_,
            ChildWatch("members", numbers[i], static_cast<int64_t>(fingerprints[i]),
                       splits[i].members));
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      return Failed(OpKind::kSplit, e.what(), options_.timeout, start);
    }
  });
  NMESH_RETURN_IF_ERROR(status);
  return made;
}

}  // namespace nmesh::comm::gloo
