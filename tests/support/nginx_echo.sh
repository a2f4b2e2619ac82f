# Sourced by integration tests: starts nginx on a free loopback port, echoing each request's
# head (as the client sent it) and body back, and logging connection reuse.
#   start_echo_nginx DIR   -> sets NGINX_PORT; access log DIR/access.log:
#                             "$msec $connection $connection_requests $request_method $request_uri $http_x_mw"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_echo_nginx() {
  local dir=$1
  mkdir -p "$dir/tmp"
  NGINX_PORT=$(free_port)
  cat > "$dir/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log;
worker_processes 1;
events { worker_connections 4096; }
http {
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  log_format conn '\$msec \$connection \$connection_requests \$request_method \$request_uri \$http_x_mw';
  access_log $dir/access.log conn;
  keepalive_requests 1000000;
  client_body_buffer_size 1m;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      echo_read_request_body;
      echo_duplicate 1 \$echo_client_request_headers;
      echo_duplicate 1 \$request_body;
    }
    location = /fixed { access_log off; return 200 "ok"; }
  }
}
CONF
  nginx -c "$dir/nginx.conf" -e "$dir/error.log"
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $NGINX_PORT)).close()" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nginx did not start"; cat "$dir/error.log"; return 1
}

stop_echo_nginx() {
  local dir=$1
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
}
