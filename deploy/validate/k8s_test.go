package validate

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// rendered is one overlay after kustomize: typed objects for built-in kinds, plain maps for
// custom resources (Strimzi, KEDA), whose Go types we do not import.
type rendered struct {
	typed []runtime.Object
	crs   []map[string]any
}

var k8sScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// The custom resources we accept, checked structurally by checkCustomResources.
var customKinds = map[string]bool{
	"kafka.strimzi.io/v1beta2/Kafka":         true,
	"kafka.strimzi.io/v1beta2/KafkaNodePool": true,
	"kafka.strimzi.io/v1beta2/KafkaTopic":    true,
	"keda.sh/v1alpha1/ScaledObject":          true,
}

func renderOverlay(t *testing.T, dir string) rendered {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	// Strict: unknown or duplicate fields are errors, so a typo in a manifest fails here
	// instead of being silently dropped by the API server.
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, k8sScheme, k8sScheme, kjson.SerializerOptions{Strict: true})
	var out rendered
	for _, r := range resMap.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		gvk := r.GetGvk()
		id := fmt.Sprintf("%s/%s %s", gvk.ApiVersion(), gvk.Kind, r.GetName())
		if customKinds[gvk.ApiVersion()+"/"+gvk.Kind] {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			out.crs = append(out.crs, m)
			continue
		}
		obj, _, err := strict.Decode(raw, nil, nil)
		if err != nil {
			t.Errorf("%s does not decode strictly into the Kubernetes API types: %v", id, err)
			continue
		}
		out.typed = append(out.typed, obj)
	}
	return out
}

func overlays(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "k8s", "overlays", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no overlays under deploy/k8s/overlays (%v)", err)
	}
	return dirs
}

func TestKustomizeOverlays(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, dir := range overlays(t) {
		names[filepath.Base(dir)] = true
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			r := renderOverlay(t, dir)
			checkWorkloads(t, r)
			checkCustomResources(t, r)
		})
	}
	for _, want := range []string{"dev", "prod"} {
		if !names[want] {
			t.Errorf("overlay %s missing", want)
		}
	}
}

var servicePorts = map[string]int32{"ingest": 8080, "feature-window": 8081, "scoring": 8082, "alerting": 8083}

func checkWorkloads(t *testing.T, r rendered) {
	deployments := map[string]*appsv1.Deployment{}
	configMaps := map[string]*corev1.ConfigMap{}
	pdbs := map[string]*policyv1.PodDisruptionBudget{}
	var hpas []*autoscalingv2.HorizontalPodAutoscaler
	var jobs []*batchv1.Job
	var policies []*networkingv1.NetworkPolicy
	for _, o := range r.typed {
		switch o := o.(type) {
		case *appsv1.Deployment:
			deployments[o.Name] = o
		case *corev1.ConfigMap:
			configMaps[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			pdbs[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *batchv1.Job:
			jobs = append(jobs, o)
		case *networkingv1.NetworkPolicy:
			policies = append(policies, o)
		case *corev1.Secret:
			t.Errorf("Secret %s rendered: secret values never live in the repository, reference vigil-secrets instead", o.Name)
		}
	}
	for name := range servicePorts {
		d, ok := deployments[name]
		if !ok {
			t.Errorf("Deployment %s missing", name)
			continue
		}
		checkPodSpec(t, "Deployment "+name, name, &d.Spec.Template.Spec, configMaps, true)
		if _, ok := pdbs[name]; !ok {
			t.Errorf("Deployment %s has no PodDisruptionBudget", name)
		}
		if d.Spec.Selector == nil || d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != name {
			t.Errorf("Deployment %s: selector must match app.kubernetes.io/name=%s", name, name)
		}
		if d.Spec.Template.Annotations["prometheus.io/path"] != "/metrics" {
			t.Errorf("Deployment %s: no prometheus.io/* scrape annotations", name)
		}
	}
	for name, pdb := range pdbs {
		if pdb.Spec.MinAvailable != nil && deployments[name] != nil && deployments[name].Spec.Replicas != nil &&
			pdb.Spec.MinAvailable.IntValue() >= int(*deployments[name].Spec.Replicas) {
			t.Errorf("PodDisruptionBudget %s: minAvailable %s ≥ replicas %d blocks every node drain", name, pdb.Spec.MinAvailable, *deployments[name].Spec.Replicas)
		}
	}
	ingestHPA := false
	for _, h := range hpas {
		if _, ok := deployments[h.Spec.ScaleTargetRef.Name]; !ok {
			t.Errorf("HPA %s targets unknown Deployment %s", h.Name, h.Spec.ScaleTargetRef.Name)
		}
		ingestHPA = ingestHPA || h.Spec.ScaleTargetRef.Name == "ingest"
		if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: minReplicas %d > maxReplicas %d", h.Name, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	if !ingestHPA {
		t.Error("no HorizontalPodAutoscaler for ingest")
	}
	migrate := false
	for _, j := range jobs {
		c := j.Spec.Template.Spec.Containers
		if len(c) == 1 && strings.Contains(c[0].Image, "vigilctl") && len(c[0].Args) > 0 && c[0].Args[0] == "migrate" {
			migrate = true
			checkPodSpec(t, "Job "+j.Name, "vigilctl", &j.Spec.Template.Spec, configMaps, false)
		}
	}
	if !migrate {
		t.Error("no Job running `vigilctl migrate`")
	}
	denyAll := false
	for _, p := range policies {
		if len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 && len(p.Spec.PolicyTypes) == 2 {
			denyAll = true
		}
	}
	if !denyAll {
		t.Error("no default-deny NetworkPolicy (both Ingress and Egress, no rules)")
	}
}

// checkPodSpec checks probes, resources, the non-root context, pinned images, and the env
// (container env plus envFrom ConfigMaps) against the deployable's Go source.
func checkPodSpec(t *testing.T, where, deployable string, spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap, server bool) {
	t.Helper()
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot must be true", where)
	}
	mounts := map[string]bool{}
	for _, v := range spec.Volumes {
		mounts[v.Name] = true
	}
	for _, c := range spec.Containers {
		w := where + " container " + c.Name
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") {
			t.Errorf("%s: image %q has no version tag", w, c.Image)
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				t.Errorf("%s: no %s request", w, res)
			}
			if _, ok := c.Resources.Limits[res]; !ok && res == corev1.ResourceMemory {
				t.Errorf("%s: no memory limit", w)
			}
		}
		if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", w)
		}
		for _, vm := range c.VolumeMounts {
			if !mounts[vm.Name] {
				t.Errorf("%s: mounts undefined volume %s", w, vm.Name)
			}
		}
		set := map[string]bool{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef == nil {
				continue
			}
			cm, ok := cms[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: envFrom unknown ConfigMap %s", w, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				set[k] = v != ""
			}
		}
		var addr string
		for _, e := range c.Env {
			set[e.Name] = e.Value != "" || e.ValueFrom != nil
			if strings.HasSuffix(e.Name, "_ADDR") && strings.HasPrefix(e.Name, "VIGIL_") && !strings.Contains(e.Name, "REDIS") {
				addr = e.Value
			}
		}
		checkEnv(t, w, deployable, set, server)
		if !server {
			continue
		}
		port, ok := servicePorts[deployable]
		if !ok {
			continue
		}
		if addr != "0.0.0.0:"+strconv.Itoa(int(port)) {
			t.Errorf("%s: listen address %q, want 0.0.0.0:%d so probes and the Service reach it", w, addr, port)
		}
		if len(c.Ports) == 0 || c.Ports[0].ContainerPort != port || c.Ports[0].Name != "http" {
			t.Errorf("%s: want containerPort %d named http", w, port)
		}
		for probe, path := range map[string]*corev1.Probe{"/livez": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
			if path == nil || path.HTTPGet == nil || path.HTTPGet.Path != probe || path.HTTPGet.Port.String() != "http" {
				t.Errorf("%s: want an httpGet probe on %s port http", w, probe)
			}
		}
	}
}

// checkCustomResources checks Strimzi and KEDA objects by structure: their Go types would pull
// in the operators' modules, so only the fields Vigil relies on are checked.
func checkCustomResources(t *testing.T, r rendered) {
	var kafkas, pools, topics, scaled []map[string]any
	for _, m := range r.crs {
		switch m["kind"] {
		case "Kafka":
			kafkas = append(kafkas, m)
		case "KafkaNodePool":
			pools = append(pools, m)
		case "KafkaTopic":
			topics = append(topics, m)
		case "ScaledObject":
			scaled = append(scaled, m)
		}
	}
	if len(kafkas) != 1 {
		t.Fatalf("want one Strimzi Kafka, got %d", len(kafkas))
	}
	k := kafkas[0]
	cluster := str(k, "metadata", "name")
	for _, a := range []string{"strimzi.io/kraft", "strimzi.io/node-pools"} {
		if str(k, "metadata", "annotations", a) != "enabled" {
			t.Errorf("Kafka %s: annotation %s must be enabled (KRaft with node pools)", cluster, a)
		}
	}
	if _, ok := get(k, "spec", "zookeeper"); ok {
		t.Errorf("Kafka %s: spec.zookeeper set; Kafka 4 is KRaft only", cluster)
	}
	if l, _ := get(k, "spec", "kafka", "listeners"); len(asSlice(l)) == 0 {
		t.Errorf("Kafka %s: no listeners", cluster)
	}
	brokers, controllers := 0, 0
	for _, p := range pools {
		if str(p, "metadata", "labels", "strimzi.io/cluster") != cluster {
			t.Errorf("KafkaNodePool %s: label strimzi.io/cluster must be %s", str(p, "metadata", "name"), cluster)
		}
		n := num(p, "spec", "replicas")
		roles, _ := get(p, "spec", "roles")
		for _, role := range asSlice(roles) {
			switch role {
			case "broker":
				brokers += n
			case "controller":
				controllers += n
			}
		}
		if _, ok := get(p, "spec", "storage", "type"); !ok {
			t.Errorf("KafkaNodePool %s: no storage", str(p, "metadata", "name"))
		}
		checkBrokerJVM(t, p)
	}
	if brokers == 0 || controllers == 0 {
		t.Errorf("Kafka %s: node pools give %d brokers and %d controllers; need both", cluster, brokers, controllers)
	}
	// Transactions need the transaction log's replication within the brokers and min ISR ≤ RF.
	txRF := num(k, "spec", "kafka", "config", "transaction.state.log.replication.factor")
	txISR := num(k, "spec", "kafka", "config", "transaction.state.log.min.isr")
	if txRF == 0 || txRF > brokers || txISR == 0 || txISR > txRF {
		t.Errorf("Kafka %s: transaction.state.log.replication.factor %d / min.isr %d do not fit %d brokers", cluster, txRF, txISR, brokers)
	}
	if rf := num(k, "spec", "kafka", "config", "offsets.topic.replication.factor"); rf == 0 || rf > brokers {
		t.Errorf("Kafka %s: offsets.topic.replication.factor %d does not fit %d brokers", cluster, rf, brokers)
	}
	partitions := map[string]int{}
	for _, tp := range topics {
		name := str(tp, "spec", "topicName")
		if name == "" {
			name = str(tp, "metadata", "name")
		}
		partitions[name] = num(tp, "spec", "partitions")
		if str(tp, "metadata", "labels", "strimzi.io/cluster") != cluster {
			t.Errorf("KafkaTopic %s: label strimzi.io/cluster must be %s", name, cluster)
		}
		if rep := num(tp, "spec", "replicas"); rep < 1 || rep > brokers {
			t.Errorf("KafkaTopic %s: replicas %d outside [1, %d brokers]", name, rep, brokers)
		}
		if isr := num(tp, "spec", "config", "min.insync.replicas"); isr > num(tp, "spec", "replicas") {
			t.Errorf("KafkaTopic %s: min.insync.replicas %d > replicas", name, isr)
		}
	}
	for _, topic := range []string{"tx.v1", "features.v1", "decisions.v1", "labels.v1"} {
		for _, n := range []string{topic, topic + ".dlq"} {
			if partitions[n] < 1 {
				t.Errorf("no KafkaTopic for %s", n)
			}
		}
	}
	deployments := map[string]*appsv1.Deployment{}
	for _, o := range r.typed {
		if d, ok := o.(*appsv1.Deployment); ok {
			deployments[d.Name] = d
		}
	}
	scaledTargets := map[string]bool{}
	for _, so := range scaled {
		name := str(so, "metadata", "name")
		target := str(so, "spec", "scaleTargetRef", "name")
		scaledTargets[target] = true
		d, ok := deployments[target]
		if !ok {
			t.Errorf("ScaledObject %s targets unknown Deployment %q", name, target)
			continue
		}
		max := num(so, "spec", "maxReplicaCount")
		if min := num(so, "spec", "minReplicaCount"); max < 1 || min > max {
			t.Errorf("ScaledObject %s: min %d / max %d replicas", name, min, max)
		}
		trig, _ := get(so, "spec", "triggers")
		triggers := asSlice(trig)
		if len(triggers) == 0 {
			t.Errorf("ScaledObject %s: no triggers", name)
		}
		for _, tr := range triggers {
			tm, _ := tr.(map[string]any)
			if str(tm, "type") != "kafka" {
				t.Errorf("ScaledObject %s: trigger %v is not kafka lag", name, str(tm, "type"))
				continue
			}
			topic := str(tm, "metadata", "topic")
			// More consumers than partitions sit idle: the replica cap is the partition count.
			if p, ok := partitions[topic]; !ok || max > p {
				t.Errorf("ScaledObject %s: maxReplicaCount %d exceeds the %d partitions of %q", name, max, p, topic)
			}
			group := str(tm, "metadata", "consumerGroup")
			if g := envValue(d, "_GROUP"); g != group {
				t.Errorf("ScaledObject %s: consumerGroup %q, but the Deployment consumes as %q", name, group, g)
			}
			if !strings.HasPrefix(str(tm, "metadata", "bootstrapServers"), cluster+"-kafka-bootstrap:") {
				t.Errorf("ScaledObject %s: bootstrapServers must be the %s-kafka-bootstrap Service", name, cluster)
			}
		}
	}
	for _, stream := range []string{"feature-window", "scoring"} {
		if !scaledTargets[stream] {
			t.Errorf("no KEDA ScaledObject for %s", stream)
		}
	}
}

func envValue(d *appsv1.Deployment, suffix string) string {
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if strings.HasPrefix(e.Name, "VIGIL_") && strings.HasSuffix(e.Name, suffix) {
			return e.Value
		}
	}
	return ""
}

func get(m map[string]any, path ...string) (any, bool) {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func str(m map[string]any, path ...string) string {
	v, _ := get(m, path...)
	s, _ := v.(string)
	return s
}

// num reads an integer that YAML may have given as a number or a string.
func num(m map[string]any, path ...string) int {
	v, _ := get(m, path...)
	switch v := v.(type) {
	case float64:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// checkBrokerJVM: a node pool runs the broker with ZGC and no periodic safepoint, as the local
// and compose brokers do, on a fixed heap of at most half its memory limit.
func checkBrokerJVM(t *testing.T, p map[string]any) {
	t.Helper()
	name := str(p, "metadata", "name")
	for opt, want := range map[string]string{"UseZGC": "true", "UnlockDiagnosticVMOptions": "true", "GuaranteedSafepointInterval": "0"} {
		if got := str(p, "spec", "jvmOptions", "-XX", opt); got != want {
			t.Errorf("KafkaNodePool %s: jvmOptions -XX %s is %q, want %q", name, opt, got, want)
		}
	}
	xms, xmx := str(p, "spec", "jvmOptions", "-Xms"), str(p, "spec", "jvmOptions", "-Xmx")
	if xms == "" || xms != xmx {
		t.Errorf("KafkaNodePool %s: heap -Xms %q / -Xmx %q, want both set and equal", name, xms, xmx)
		return
	}
	// Java's heap units (k, m, g) are binary: the quantity suffixes Ki, Mi, Gi.
	heap, err := resource.ParseQuantity(strings.ToUpper(xmx) + "i")
	limit, lerr := resource.ParseQuantity(str(p, "spec", "resources", "limits", "memory"))
	if err != nil || lerr != nil {
		t.Errorf("KafkaNodePool %s: heap %q or memory limit unreadable: %v %v", name, xmx, err, lerr)
		return
	}
	if 2*heap.Value() > limit.Value() {
		t.Errorf("KafkaNodePool %s: heap %s is more than half the memory limit %s (the page cache needs the rest)", name, xmx, limit.String())
	}
}
