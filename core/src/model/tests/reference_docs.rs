//! The reference §11 documents, verbatim (shared/reference/appmesh-istio.md).

pub(crate) const VN_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualNodeName": "color-blue",
  "spec": {
    "listeners": [
      {
        "portMapping": { "port": 8080, "protocol": "http" },
        "connectionPool": {
          "http": { "maxConnections": 100, "maxPendingRequests": 50 }
        },
        "healthCheck": {
          "protocol": "http",
          "path": "/ping",
          "port": 8080,
          "intervalMillis": 5000,
          "timeoutMillis": 2000,
          "healthyThreshold": 2,
          "unhealthyThreshold": 2
        },
        "outlierDetection": {
          "maxServerErrors": 5,
          "interval": { "unit": "s", "value": 10 },
          "baseEjectionDuration": { "unit": "s", "value": 30 },
          "maxEjectionPercent": 50
        },
        "timeout": {
          "http": {
            "perRequest": { "unit": "s", "value": 15 },
            "idle": { "unit": "s", "value": 300 }
          }
        }
      }
    ],
    "serviceDiscovery": {
      "dns": { "hostname": "color-blue.demo.svc.cluster.local", "responseType": "ENDPOINTS" }
    },
    "backends": [
      { "virtualService": { "virtualServiceName": "color-store.demo.svc.cluster.local" } }
    ],
    "logging": {
      "accessLog": {
        "file": {
          "path": "/dev/stdout",
          "format": {
            "json": [
              { "key": "status", "value": "%RESPONSE_CODE%" },
              { "key": "duration_ms", "value": "%DURATION%" }
            ]
          }
        }
      }
    }
  },
  "tags": [ { "key": "team", "value": "colors" } ]
}"#;

pub(crate) const VN_DESCRIBE: &str = r#"{
    "virtualNode": {
        "meshName": "demo",
        "metadata": {
            "arn": "arn:aws:appmesh:us-west-2:111122223333:mesh/demo/virtualNode/color-blue",
            "createdAt": "2024-05-01T12:00:00.000000+00:00",
            "lastUpdatedAt": "2024-05-01T12:00:00.000000+00:00",
            "meshOwner": "111122223333",
            "resourceOwner": "111122223333",
            "uid": "5f0c1b2e-3d4a-4b5c-8d9e-0a1b2c3d4e5f",
            "version": 1
        },
        "spec": {
            "backends": [
                { "virtualService": { "virtualServiceName": "color-store.demo.svc.cluster.local" } }
            ],
            "listeners": [
                {
                    "connectionPool": { "http": { "maxConnections": 100, "maxPendingRequests": 50 } },
                    "healthCheck": {
                        "healthyThreshold": 2,
                        "intervalMillis": 5000,
                        "path": "/ping",
                        "port": 8080,
                        "protocol": "http",
                        "timeoutMillis": 2000,
                        "unhealthyThreshold": 2
                    },
                    "outlierDetection": {
                        "baseEjectionDuration": { "unit": "s", "value": 30 },
                        "interval": { "unit": "s", "value": 10 },
                        "maxEjectionPercent": 50,
                        "maxServerErrors": 5
                    },
                    "portMapping": { "port": 8080, "protocol": "http" },
                    "timeout": {
                        "http": {
                            "idle": { "unit": "s", "value": 300 },
                            "perRequest": { "unit": "s", "value": 15 }
                        }
                    }
                }
            ],
            "logging": {
                "accessLog": {
                    "file": {
                        "format": {
                            "json": [
                                { "key": "status", "value": "%RESPONSE_CODE%" },
                                { "key": "duration_ms", "value": "%DURATION%" }
                            ]
                        },
                        "path": "/dev/stdout"
                    }
                }
            },
            "serviceDiscovery": {
                "dns": { "hostname": "color-blue.demo.svc.cluster.local", "responseType": "ENDPOINTS" }
            }
        },
        "status": { "status": "ACTIVE" },
        "virtualNodeName": "color-blue"
    }
}"#;

pub(crate) const VG_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualGatewayName": "ingress-gw",
  "spec": {
    "listeners": [
      {
        "portMapping": { "port": 9080, "protocol": "http" },
        "connectionPool": {
          "http": { "maxConnections": 1000, "maxPendingRequests": 10000 }
        },
        "healthCheck": {
          "protocol": "http",
          "path": "/ready",
          "port": 9080,
          "intervalMillis": 10000,
          "timeoutMillis": 2000,
          "healthyThreshold": 2,
          "unhealthyThreshold": 3
        }
      }
    ],
    "logging": {
      "accessLog": {
        "file": { "path": "/dev/stdout", "format": { "text": "[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE%\n" } }
      }
    }
  }
}"#;

pub(crate) const GR_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualGatewayName": "ingress-gw",
  "gatewayRouteName": "color-route",
  "spec": {
    "priority": 10,
    "httpRoute": {
      "match": { "prefix": "/color/", "hostname": { "suffix": "example.com" } },
      "action": {
        "target": { "virtualService": { "virtualServiceName": "color.demo.svc.cluster.local" } },
        "rewrite": { "prefix": { "value": "/" }, "hostname": { "defaultTargetHostname": "ENABLED" } }
      }
    }
  }
}"#;

pub(crate) const VR_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualRouterName": "color-router",
  "spec": {
    "listeners": [ { "portMapping": { "port": 8080, "protocol": "http" } } ]
  }
}"#;

pub(crate) const ROUTE_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualRouterName": "color-router",
  "routeName": "color-canary",
  "spec": {
    "priority": 1,
    "httpRoute": {
      "match": {
        "prefix": "/",
        "headers": [ { "name": "x-canary", "invert": false, "match": { "exact": "true" } } ]
      },
      "action": {
        "weightedTargets": [
          { "virtualNode": "color-blue", "weight": 90 },
          { "virtualNode": "color-green", "weight": 10 }
        ]
      },
      "retryPolicy": {
        "maxRetries": 3,
        "perRetryTimeout": { "unit": "ms", "value": 500 },
        "httpRetryEvents": [ "server-error", "gateway-error", "stream-error" ],
        "tcpRetryEvents": [ "connection-error" ]
      },
      "timeout": {
        "perRequest": { "unit": "s", "value": 2 },
        "idle": { "unit": "s", "value": 300 }
      }
    }
  }
}"#;

pub(crate) const VS_INPUT: &str = r#"{
  "meshName": "demo",
  "virtualServiceName": "color.demo.svc.cluster.local",
  "spec": {
    "provider": {
      "virtualRouter": { "virtualRouterName": "color-router" }
    }
  }
}"#;
