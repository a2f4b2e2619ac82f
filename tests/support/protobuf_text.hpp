#pragma once
// For tests: protobuf messages written in text format ("items { id: \"a\" } total: 3") and
// encoded to wire format through libprotobuf's reflection, with the types of a descriptor set
// made by protoc at build time (tests/support/protos, see tests/CMakeLists.txt). Throws when
// the set or the text does not parse, so a test fails loudly instead of comparing garbage.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>

namespace doppel::testing {

class ProtobufText {
 public:
  explicit ProtobufText(const std::string& descriptor_set_path) {
    std::ifstream in(descriptor_set_path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    google::protobuf::FileDescriptorSet set;
    if (!in.good() && !in.eof()) throw std::runtime_error("cannot read " + descriptor_set_path);
    if (!set.ParseFromString(bytes)) throw std::runtime_error(descriptor_set_path + " is not a FileDescriptorSet");
    for (const auto& file : set.file())  // protoc writes imports first
      if (!pool_.BuildFile(file)) throw std::runtime_error("cannot build " + file.name());
  }

  // `text` (text format) of message type `type` ("doppel.catalog.SearchReply") in wire format.
  std::string encode(const std::string& type, const std::string& text) {
    const google::protobuf::Descriptor* descriptor = pool_.FindMessageTypeByName(type);
    if (!descriptor) throw std::runtime_error("no message type " + type);
    std::unique_ptr<google::protobuf::Message> message(factory_.GetPrototype(descriptor)->New());
    if (!google::protobuf::TextFormat::ParseFromString(text, message.get()))
      throw std::runtime_error("text format does not parse as " + type + ": " + text);
    return message->SerializeAsString();
  }

 private:
  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_{&pool_};
};

}  // namespace doppel::testing
