//! Roles: named application templates a tenant assigns to its sub-users.
//!
//! A role's name is unique in its tenant; its level (UUCall `level`) is a
//! number from 0 to `ROLE_LEVEL_MAX` that subledger keeps but does not
//! interpret. A tenant has at most [`ROLES_MAX`] roles. A role still assigned
//! to a sub-user cannot be deleted (`Conflict`): take it away from them
//! first, so that nobody loses applications as a side effect. Assigning a
//! role and deleting one both hold the tenant's row lock, so the check holds.

use subledger_domain::access::{AppId, AppSet, ROLE_LEVEL_MAX, RoleName, find_app};
use subledger_domain::ids::RoleId;
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_storage::roles::{self as store_roles, RoleRecord};
use subledger_storage::tenants as store_tenants;
use subledger_storage::{StorageError, UniqueKey, WriteTx};

use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Most roles a tenant may have.
pub const ROLES_MAX: i64 = 1_000;

/// A role of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub level: i64,
    pub created_at_us: i64,
}

impl From<RoleRecord> for Role {
    fn from(record: RoleRecord) -> Role {
        Role { id: record.role_id(), name: record.name, level: record.level, created_at_us: record.created_at_us }
    }
}

/// Changes to a role; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct RoleChanges {
    pub name: Option<RoleName>,
    pub level: Option<i64>,
}

fn check_level(level: i64) -> ServiceResult<()> {
    if (0..=ROLE_LEVEL_MAX).contains(&level) { Ok(()) } else { Err(ServiceError::Invalid { field: "level", reason: format!("must be from 0 to {ROLE_LEVEL_MAX}") }) }
}

fn name_taken(error: StorageError) -> ServiceError {
    match error {
        StorageError::UniqueViolation { key: UniqueKey::RoleName, .. } => ServiceError::Conflict("the tenant has a role of this name"),
        other => other.into(),
    }
}

/// The application sets named by a grant and a revocation, checked: every
/// id in the tree, and none in both lists.
pub(crate) fn grant_sets(grant: &[AppId], revoke: &[AppId]) -> ServiceResult<(AppSet, AppSet)> {
    let parse = |ids: &[AppId]| AppSet::of(ids.iter().copied()).map_err(|e| ServiceError::Invalid { field: "apps", reason: e.to_string() });
    let (granted, revoked) = (parse(grant)?, parse(revoke)?);
    if let Some(both) = grant.iter().find(|id| revoke.contains(id)) {
        return Err(ServiceError::Invalid { field: "apps", reason: format!("application {both} is both granted and revoked") });
    }
    Ok((granted, revoked))
}

/// `+101,102 -201`: a grant's particulars for the operation log.
pub(crate) fn grant_detail(grant: &[AppId], revoke: &[AppId]) -> String {
    let list = |ids: &[AppId]| ids.iter().map(AppId::to_string).collect::<Vec<_>>().join(",");
    match (grant.is_empty(), revoke.is_empty()) {
        (false, false) => format!("+{} -{}", list(grant), list(revoke)),
        (false, true) => format!("+{}", list(grant)),
        (true, false) => format!("-{}", list(revoke)),
        (true, true) => String::new(),
    }
}

/// Stored leaves as a set; ids the tree no longer has grant nothing.
pub(crate) fn known_apps(ids: &[AppId]) -> AppSet {
    AppSet::of(ids.iter().copied().filter(|id| find_app(*id).is_some())).unwrap_or_default()
}

/// The tenant's role `id` inside a write transaction, or `NotFound`.
pub(crate) async fn role_in_tx(tx: &mut WriteTx, tenant: &Tenant, id: RoleId) -> ServiceResult<RoleRecord> {
    store_roles::get_in_tx(tx, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Role))
}

impl Services {
    pub async fn create_role(&self, tenant: &Tenant, name: RoleName, level: i64, change: &Change) -> ServiceResult<Role> {
        check_level(level)?;
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        store_tenants::lock(&mut tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        if store_roles::count_in_tx(&mut tx, tenant.id).await? >= ROLES_MAX {
            return Err(ServiceError::Conflict("the tenant has its maximum of 1000 roles"));
        }
        let id = store_roles::insert(&mut tx, tenant.id, name.as_str(), level, now).await.map_err(name_taken)?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::RoleCreate, name.as_str()).with_detail(format!("id={id} level={level}"))).await?;
        Ok(Role { id, name: name.as_str().to_owned(), level, created_at_us: now })
    }

    /// The tenant's roles by id, those whose name contains `name` if given.
    pub async fn roles(&self, tenant: &Tenant, name: Option<&str>) -> ServiceResult<Vec<Role>> {
        let roles = store_roles::list(&self.store, tenant.id, ROLES_MAX).await?;
        Ok(roles.into_iter().filter(|role| name.is_none_or(|part| role.name.contains(part))).map(Role::from).collect())
    }

    pub async fn role(&self, tenant: &Tenant, id: RoleId) -> ServiceResult<Role> {
        store_roles::get(&self.store, tenant.id, id).await?.map(Role::from).ok_or(ServiceError::NotFound(Resource::Role))
    }

    pub async fn update_role(&self, tenant: &Tenant, id: RoleId, changes: RoleChanges, change: &Change) -> ServiceResult<Role> {
        if let Some(level) = changes.level {
            check_level(level)?;
        }
        let mut tx = self.store.begin_write().await?;
        let name = changes.name.as_ref().map(RoleName::as_str);
        let record = store_roles::update(&mut tx, tenant.id, id, name, changes.level, now_us()).await.map_err(name_taken)?.ok_or(ServiceError::NotFound(Resource::Role))?;
        let detail = [name.map(|n| format!("name={n}")), changes.level.map(|l| format!("level={l}"))].into_iter().flatten().collect::<Vec<_>>().join(" ");
        change.commit(tx, tenant.id, Operation::new(OperationKind::RoleUpdate, record.name.as_str()).with_detail(detail)).await?;
        Ok(record.into())
    }

    /// Deletes a role that no sub-user holds (`Conflict` while one does).
    pub async fn delete_role(&self, tenant: &Tenant, id: RoleId, change: &Change) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        store_tenants::lock(&mut tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        let role = role_in_tx(&mut tx, tenant, id).await?;
        if store_roles::holders_in_tx(&mut tx, tenant.id, id).await? > 0 {
            return Err(ServiceError::Conflict("the role is assigned to sub-users: assign them another role first"));
        }
        store_roles::delete(&mut tx, tenant.id, id).await?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::RoleDelete, role.name.as_str()).with_detail(format!("id={id}"))).await
    }

    /// The applications a role's template grants.
    pub async fn role_apps(&self, tenant: &Tenant, id: RoleId) -> ServiceResult<AppSet> {
        self.role(tenant, id).await?;
        Ok(known_apps(&store_roles::apps(&self.store, id).await?))
    }

    /// Adds `grant` to a role's template and takes `revoke` away (each with
    /// its subtree); the template after.
    pub async fn set_role_apps(&self, tenant: &Tenant, id: RoleId, grant: &[AppId], revoke: &[AppId], change: &Change) -> ServiceResult<AppSet> {
        let (granted, revoked) = grant_sets(grant, revoke)?;
        let mut tx = self.store.begin_write().await?;
        let role = role_in_tx(&mut tx, tenant, id).await?;
        let apps = known_apps(&store_roles::apps_in_tx(&mut tx, id).await?).union(granted).minus(revoked);
        store_roles::set_apps(&mut tx, id, &apps.leaf_ids()).await?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::RoleGrants, role.name.as_str()).with_detail(grant_detail(grant, revoke))).await?;
        Ok(apps)
    }
}
