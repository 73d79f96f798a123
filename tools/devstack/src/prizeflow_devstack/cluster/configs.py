"""The node's configuration files and kubeconfigs, rendered from versions.py and the cluster's paths."""

from __future__ import annotations

import json

from prizeflow_devstack.cluster import versions as v
from prizeflow_devstack.cluster.paths import ClusterPaths
from prizeflow_devstack.cluster.pki import Identity

API_PORT = 6443
KUBELET_PORT = 10250


IDENTITIES: tuple[Identity, ...] = (
    Identity(
        "apiserver",
        "kube-apiserver",
        dns_names=(
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{v.CLUSTER_DOMAIN}",
            "localhost",
        ),
        ip_addresses=(v.API_SERVICE_IP, v.NODE_IP, "127.0.0.1"),
    ),
    Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    Identity("admin", "prizeflow-cluster-admin", "system:masters"),
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    Identity(
        "kubelet",
        f"system:node:{v.NODE_NAME}",
        "system:nodes",
        dns_names=(v.NODE_NAME, "localhost"),
        ip_addresses=(v.NODE_IP, "127.0.0.1"),
    ),
    Identity("kube-proxy", "system:kube-proxy"),
    Identity("kube-router", "system:kube-router"),
    Identity("front-proxy-client", "front-proxy-client", ca="front-proxy-ca"),
)

KUBECONFIGS = {
    "admin": "admin",
    "controller-manager": "controller-manager",
    "scheduler": "scheduler",
    "kubelet": "kubelet",
    "kube-proxy": "kube-proxy",
    "kube-router": "kube-router",
}


def _kubeconfig(paths: ClusterPaths, identity: str) -> str:
    pki = paths.pki
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "prizeflow",
                    "cluster": {
                        "server": f"https://{v.NODE_IP}:{API_PORT}",
                        "certificate-authority": str(pki / "ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": identity,
                    "user": {
                        "client-certificate": str(pki / f"{identity}.crt"),
                        "client-key": str(pki / f"{identity}.key"),
                    },
                }
            ],
            "contexts": [{"name": "prizeflow", "context": {"cluster": "prizeflow", "user": identity}}],
            "current-context": "prizeflow",
        },
        indent=2,
    )


def write_kubeconfigs(paths: ClusterPaths) -> None:
    paths.kubeconfig.mkdir(parents=True, exist_ok=True)
    for name, identity in KUBECONFIGS.items():
        target = paths.kubeconfig / f"{name}.conf"
        target.write_text(_kubeconfig(paths, identity))
        target.chmod(0o600)


def containerd_config(paths: ClusterPaths) -> str:
    c = paths.containerd
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
[grpc]
  address = "{paths.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:{v.PAUSE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{paths.cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{c / "certs.d"}"
"""


def cni_config(paths: ClusterPaths) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": "prizeflow",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(paths.base / "cni-ipam"),
                        "ranges": [[{"subnet": v.POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(paths: ClusterPaths) -> str:
    pki = paths.pki
    return json.dumps(
        {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": v.NODE_IP,
            "port": KUBELET_PORT,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": v.CLUSTER_DOMAIN,
            "clusterDNS": [v.DNS_SERVICE_IP],
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
            "tlsCertFile": str(pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "failSwapOn": False,
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": str(paths.pod_logs),
            # The node's disk is the host's, shared with its build caches and checkouts: a percentage of a 252 GB
            # disk (2 % = 5 GB) tainted the node `disk-pressure` for what the host keeps, and nothing scheduled. The
            # kubelet steps in only when the disk is nearly full; `up` refuses to start without room (node.py).
            "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1Gi", "imagefs.available": "1Gi"},
            # Images are collected only on a full disk: containerd 1.6 does not pin the sandbox image, and the
            # kubelet collected `pause` on a shared 252 GB disk at 98 % (a second checkout's cluster beside this one):
            # every new pod then failed to start, and an upgrade's rollout stalled. The images are this node's own.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "maxPods": 150,
            "healthzBindAddress": "127.0.0.1",
            "readOnlyPort": 0,
        },
        indent=2,
    )


def kube_proxy_config(paths: ClusterPaths) -> str:
    return json.dumps(
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(paths.kubeconfig / "kube-proxy.conf")},
            "mode": "iptables",
            "clusterCIDR": v.CLUSTER_CIDR,
            # 0: leave the host's conntrack table size alone (its sysctl is not writable here).
            "conntrack": {"maxPerCore": 0},
            "metricsBindAddress": "127.0.0.1:10249",
            "healthzBindAddress": "127.0.0.1:10256",
        },
        indent=2,
    )


def registry_config(paths: ClusterPaths, port: int) -> str:
    return json.dumps(
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(paths.registry)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}"},
        }
    )


def hosts_toml(port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    return f'server = "{url}"\n\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n'


__all__ = [
    "API_PORT",
    "IDENTITIES",
    "KUBELET_PORT",
    "cni_config",
    "containerd_config",
    "hosts_toml",
    "kube_proxy_config",
    "kubelet_config",
    "registry_config",
    "write_kubeconfigs",
]
