#include "doppel/protobuf_json.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/stubs/strutil.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <climits>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>

#include "doppel/json_writer.hpp"
#include "doppel/options.hpp"

namespace doppel::protobuf {
namespace gp = google::protobuf;

namespace {

// libprotobuf logs every message it cannot parse (invalid UTF-8 in a proto3 string, a missing
// required field) to stderr; on traffic that is one line per bad message, which doppel reports
// as a difference with its reason instead. Its messages go to spdlog's debug level.
void forward_protobuf_log(gp::LogLevel level, const char* file, int line, const std::string& message) {
  if (level >= gp::LOGLEVEL_FATAL) {
    spdlog::critical("libprotobuf {}:{}: {}", file, line, message);
    return;
  }
  spdlog::debug("libprotobuf {}:{}: {}", file, line, message);
}

void install_log_handler() {
  static std::once_flag once;
  std::call_once(once, [] { gp::SetLogHandler(&forward_protobuf_log); });
}

class CollectErrors : public gp::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const gp::Message* /*descriptor*/,
                ErrorLocation /*location*/, const std::string& message) override {
    if (!text.empty()) text += "; ";
    text += filename + (element_name.empty() ? "" : " (" + element_name + ")") + ": " + message;
  }
  std::string text;
};

// The first field of `message` (or of a message inside it) that its type does not declare, as
// "path: field N", or "" when there is none.
std::string first_unknown_field(const gp::Message& message, const std::string& path) {
  const gp::Reflection* reflection = message.GetReflection();
  const gp::UnknownFieldSet& unknown = reflection->GetUnknownFields(message);
  if (!unknown.empty())
    return (path.empty() ? message.GetDescriptor()->full_name() : path) + ": field " +
           std::to_string(unknown.field(0).number());
  std::vector<const gp::FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const gp::FieldDescriptor* field : fields) {
    if (field->cpp_type() != gp::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    std::string here = (path.empty() ? "" : path + ".") + field->name();
    if (field->is_repeated()) {
      int n = reflection->FieldSize(message, field);
      for (int i = 0; i < n; ++i) {
        std::string found =
            first_unknown_field(reflection->GetRepeatedMessage(message, field, i), here + "[" + std::to_string(i) + "]");
        if (!found.empty()) return found;
      }
    } else {
      std::string found = first_unknown_field(reflection->GetMessage(message, field), here);
      if (!found.empty()) return found;
    }
  }
  return {};
}

bool is_printable_text(std::string_view bytes) {
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7f) return false;
  }
  return simdjson::validate_utf8(bytes.data(), bytes.size());
}

void write_fields(const gp::UnknownFieldSet& fields, std::string& out, std::size_t depth, std::size_t max_depth);

void write_length_delimited(const std::string& bytes, std::string& out, std::size_t depth, std::size_t max_depth) {
  if (bytes.empty() || is_printable_text(bytes)) {
    append_json_string(out, bytes);
    return;
  }
  if (depth < max_depth) {
    gp::UnknownFieldSet nested;
    if (nested.ParseFromString(bytes)) {
      write_fields(nested, out, depth + 1, max_depth);
      return;
    }
  }
  if (simdjson::validate_utf8(bytes.data(), bytes.size())) {
    append_json_string(out, bytes);
    return;
  }
  std::string base64;
  gp::Base64Escape(bytes, &base64);
  append_json_string(out, base64);
}

void write_value(const gp::UnknownField& field, std::string& out, std::size_t depth, std::size_t max_depth) {
  char hex[24];
  switch (field.type()) {
    case gp::UnknownField::TYPE_VARINT: out += std::to_string(field.varint()); return;
    case gp::UnknownField::TYPE_FIXED32:
      std::snprintf(hex, sizeof hex, "\"0x%08x\"", static_cast<unsigned>(field.fixed32()));
      out += hex;
      return;
    case gp::UnknownField::TYPE_FIXED64:
      std::snprintf(hex, sizeof hex, "\"0x%016llx\"", static_cast<unsigned long long>(field.fixed64()));
      out += hex;
      return;
    case gp::UnknownField::TYPE_LENGTH_DELIMITED:
      write_length_delimited(field.length_delimited(), out, depth, max_depth);
      return;
    case gp::UnknownField::TYPE_GROUP: write_fields(field.group(), out, depth + 1, max_depth); return;
  }
}

void write_fields(const gp::UnknownFieldSet& fields, std::string& out, std::size_t depth, std::size_t max_depth) {
  // Field numbers in the order they first occur, each with the indexes of its occurrences.
  std::vector<std::pair<int, std::vector<int>>> numbers;
  std::unordered_map<int, std::size_t> slot;
  for (int i = 0; i < fields.field_count(); ++i) {
    int number = fields.field(i).number();
    auto [it, inserted] = slot.emplace(number, numbers.size());
    if (inserted) numbers.push_back({number, {}});
    numbers[it->second].second.push_back(i);
  }
  out += '{';
  bool first = true;
  for (const auto& [number, occurrences] : numbers) {
    if (!first) out += ',';
    first = false;
    out += '"' + std::to_string(number) + "\":";
    if (occurrences.size() == 1) {
      write_value(fields.field(occurrences[0]), out, depth, max_depth);
      continue;
    }
    out += '[';
    for (std::size_t k = 0; k < occurrences.size(); ++k) {
      if (k) out += ',';
      write_value(fields.field(occurrences[k]), out, depth, max_depth);
    }
    out += ']';
  }
  out += '}';
}

}  // namespace

struct DescriptorSet::Impl {
  std::string origin;
  gp::DescriptorPool pool;
  // DynamicMessageFactory hands out prototypes under a lock; they are looked up once, here.
  gp::DynamicMessageFactory factory{&pool};
  std::unordered_map<std::string, const gp::Message*> prototypes;  // by full type name
  std::map<std::string, Method, std::less<>> methods;               // by path
  gp::util::JsonPrintOptions print_options;
};

DescriptorSet::DescriptorSet(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DescriptorSet::~DescriptorSet() = default;

std::shared_ptr<const DescriptorSet> DescriptorSet::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DescriptorSetError("cannot read descriptor set " + path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw DescriptorSetError("cannot read descriptor set " + path);
  return parse(bytes, path);
}

std::shared_ptr<const DescriptorSet> DescriptorSet::parse(std::string_view bytes, std::string_view origin) {
  install_log_handler();
  std::string name(origin);
  gp::FileDescriptorSet set;
  if (bytes.size() > static_cast<std::size_t>(INT_MAX) || !set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw DescriptorSetError(name + " is not a FileDescriptorSet (make one with protoc --descriptor_set_out=" + name +
                             " --include_imports FILE.proto)");
  if (set.file_size() == 0) throw DescriptorSetError(name + " holds no .proto file");

  auto impl = std::make_unique<Impl>();
  impl->origin = name;
  // Files are built once their imports are: protoc writes them in that order, but a set put
  // together otherwise is read too.
  std::map<std::string, const gp::FileDescriptorProto*> pending;
  for (const auto& file : set.file()) {
    if (!pending.emplace(file.name(), &file).second)
      throw DescriptorSetError(name + " holds " + file.name() + " twice");
  }
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end();) {
      const gp::FileDescriptorProto& file = *it->second;
      bool ready = true;
      for (const auto& dependency : file.dependency())
        if (impl->pool.FindFileByName(dependency) == nullptr) ready = false;
      if (!ready) {
        ++it;
        continue;
      }
      CollectErrors errors;
      if (impl->pool.BuildFileCollectingErrors(file, &errors) == nullptr)
        throw DescriptorSetError(name + ": " + (errors.text.empty() ? "invalid file " + file.name() : errors.text));
      it = pending.erase(it);
      progress = true;
    }
    if (!progress) {
      const gp::FileDescriptorProto& file = *pending.begin()->second;
      std::string missing;
      for (const auto& dependency : file.dependency())
        if (impl->pool.FindFileByName(dependency) == nullptr && !pending.count(dependency)) missing = dependency;
      throw DescriptorSetError(name + ": " + file.name() + " imports " +
                               (missing.empty() ? std::string("files that import it back") : missing) +
                               ", which the set does not hold (make it with protoc --include_imports)");
    }
  }

  for (const auto& proto : set.file()) {
    const gp::FileDescriptor* file = impl->pool.FindFileByName(proto.name());
    for (int s = 0; s < file->service_count(); ++s) {
      const gp::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const gp::MethodDescriptor* method = service->method(m);
        Method entry;
        entry.path = "/" + service->full_name() + "/" + method->name();
        entry.input_type = method->input_type()->full_name();
        entry.output_type = method->output_type()->full_name();
        entry.client_streaming = method->client_streaming();
        entry.server_streaming = method->server_streaming();
        impl->methods.emplace(entry.path, entry);
      }
    }
  }
  // Prototypes of every message type, nested ones included, so that to_json never takes the
  // factory's lock.
  std::vector<const gp::Descriptor*> todo;
  for (const auto& proto : set.file()) {
    const gp::FileDescriptor* file = impl->pool.FindFileByName(proto.name());
    for (int i = 0; i < file->message_type_count(); ++i) todo.push_back(file->message_type(i));
  }
  while (!todo.empty()) {
    const gp::Descriptor* type = todo.back();
    todo.pop_back();
    impl->prototypes.emplace(type->full_name(), impl->factory.GetPrototype(type));
    for (int i = 0; i < type->nested_type_count(); ++i) todo.push_back(type->nested_type(i));
  }
  // Defaults printed: a field changed to 0, "" or false then reads as `changed`, not `missing`.
  // Field names as the .proto writes them (proto3 JSON's option to keep them), so that the paths
  // users write in ignore rules are the names they read in their .proto files; enums by name.
  impl->print_options.always_print_primitive_fields = true;
  impl->print_options.preserve_proto_field_names = true;
  return std::shared_ptr<const DescriptorSet>(new DescriptorSet(std::move(impl)));
}

std::optional<DescriptorSet::Method> DescriptorSet::method(std::string_view path) const {
  path = path.substr(0, path.find('?'));
  auto it = impl_->methods.find(path);
  if (it == impl_->methods.end()) return std::nullopt;
  return it->second;
}

std::vector<DescriptorSet::Method> DescriptorSet::methods() const {
  std::vector<Method> out;
  for (const auto& [path, method] : impl_->methods) out.push_back(method);
  return out;
}

bool DescriptorSet::has_message_type(std::string_view full_name) const {
  return impl_->prototypes.count(std::string(full_name)) > 0;
}

bool DescriptorSet::to_json(std::string_view type, std::string_view bytes, std::string& json,
                            std::string& error) const {
  auto it = impl_->prototypes.find(std::string(type));
  if (it == impl_->prototypes.end()) {
    error = "message type " + std::string(type) + " is not in " + impl_->origin;
    return false;
  }
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    error = "message larger than 2 GiB";
    return false;
  }
  std::unique_ptr<gp::Message> message(it->second->New());
  // The partial parse, and the check of required fields after it, keep libprotobuf from
  // logging about missing fields.
  if (!message->ParsePartialFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    error = "not a valid " + std::string(type) + " (wire format or UTF-8 of a string field)";
    return false;
  }
  if (!message->IsInitialized()) {
    error = std::string(type) + " misses required fields: " + message->InitializationErrorString();
    return false;
  }
  std::string unknown = first_unknown_field(*message, "");
  if (!unknown.empty()) {
    error = "does not match " + std::string(type) + " in " + impl_->origin + ": " + unknown + " is not declared";
    return false;
  }
  json.clear();
  auto status = gp::util::MessageToJsonString(*message, &json, impl_->print_options);
  if (!status.ok()) {
    error = "cannot print " + std::string(type) + " as JSON: " + std::string(status.message());
    return false;
  }
  return true;
}

bool DescriptorSet::from_json(std::string_view type, std::string_view json, std::string& bytes,
                              std::string& error) const {
  auto it = impl_->prototypes.find(std::string(type));
  if (it == impl_->prototypes.end()) {
    error = "message type " + std::string(type) + " is not in " + impl_->origin;
    return false;
  }
  std::unique_ptr<gp::Message> message(it->second->New());
  // Unknown fields are refused: an edit that names a field the type lacks would vanish silently.
  gp::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = gp::util::JsonStringToMessage(gp::StringPiece(json.data(), json.size()), message.get(), options);
  if (!status.ok()) {
    error = "JSON does not fit " + std::string(type) + ": " + std::string(status.message());
    return false;
  }
  bytes.clear();
  if (!message->SerializePartialToString(&bytes)) {
    error = "cannot serialize " + std::string(type);
    return false;
  }
  return true;
}

bool raw_to_json(std::string_view bytes, std::string& json, std::string& error, std::size_t max_depth) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    error = "message larger than 2 GiB";
    return false;
  }
  gp::UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    error = "not protobuf wire format";
    return false;
  }
  json.clear();
  write_fields(fields, json, 0, max_depth);
  return true;
}

std::shared_ptr<const DescriptorSet> descriptor_set_option(const doppel::Options& options) {
  if (!options.has("descriptor_set")) return nullptr;
  try {
    return DescriptorSet::load_file(options.string("descriptor_set"));
  } catch (const DescriptorSetError& e) {
    options.fail("descriptor_set", e.what());
  }
}

}  // namespace doppel::protobuf
