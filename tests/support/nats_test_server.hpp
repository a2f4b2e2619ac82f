#pragma once
// For doctest unit tests of the NATS plugins: one nats-server with JetStream on a free loopback
// port (its store in a temporary directory), and a client connection to set up streams,
// publish and look at consumers as the server sees them.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "doppel/nats_connection.hpp"
#include "loopback_port.hpp"

extern char** environ;

namespace doppel::testing {

class NatsServer {
 public:
  // Started at once, or later with start() (to test clients that come up before the server).
  explicit NatsServer(bool start_now = true) : port_(unused_loopback_port()) {
    char dir_template[] = "/tmp/doppel-nats-test-XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    if (start_now) start();
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;
  ~NatsServer() {
    if (js_) jsCtx_Destroy(js_);
    if (nc_) natsConnection_Destroy(nc_);
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  void start() {
    std::string port = std::to_string(port_);
    std::vector<std::string> args = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", dir_};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, (dir_ + "/server.log").c_str(), O_WRONLY | O_CREAT, 0644);
    int rc = posix_spawnp(&pid_, "nats-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE_MESSAGE(rc == 0, "cannot start nats-server (Debian package nats-server)");
    for (int i = 0; i < 200 && !js_; ++i) {
      natsConnection* nc = nullptr;
      if (natsConnection_ConnectTo(&nc, url().c_str()) == NATS_OK) {
        nc_ = nc;
        natsConnection_JetStream(&js_, nc_, nullptr);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    REQUIRE_MESSAGE(js_ != nullptr, "nats-server did not come up");
  }

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

  void add_stream(const std::string& name, const std::string& subject) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = name.c_str();
    const char* subjects[] = {subject.c_str()};
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    jsStreamInfo* info = nullptr;
    REQUIRE(js_AddStream(&info, js_, &config, nullptr, nullptr) == NATS_OK);
    jsStreamInfo_Destroy(info);
  }
  // Publishes the records as one NATS message (a request with its response travels so).
  void publish(const std::string& subject, const std::vector<const Message*>& records) {
    std::string body = nats::join_records(records);
    jsPubAck* ack = nullptr;
    REQUIRE(js_Publish(&ack, js_, subject.c_str(), body.data(), static_cast<int>(body.size()), nullptr, nullptr) ==
            NATS_OK);
    jsPubAck_Destroy(ack);
  }
  // Messages stored in the stream; -1 when it does not exist.
  std::int64_t stream_messages(const std::string& stream) {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, nullptr) != NATS_OK) return -1;
    auto n = static_cast<std::int64_t>(info->State.Msgs);
    jsStreamInfo_Destroy(info);
    return n;
  }
  // The durable consumer as the server sees it: {NumAckPending, NumRedelivered, NumPending}.
  std::array<std::int64_t, 3> consumer(const std::string& stream, const std::string& durable) {
    jsConsumerInfo* info = nullptr;
    REQUIRE(js_GetConsumerInfo(&info, js_, stream.c_str(), durable.c_str(), nullptr, nullptr) == NATS_OK);
    std::array<std::int64_t, 3> out{info->NumAckPending, info->NumRedelivered,
                                    static_cast<std::int64_t>(info->NumPending)};
    jsConsumerInfo_Destroy(info);
    return out;
  }

 private:
  int port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace doppel::testing
